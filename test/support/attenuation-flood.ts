/**
 * A separate process attenuating one token as fast as 8 connections go, for 4 s, while a victim
 * invokes its app and attenuates its own token: the victim's latencies quiet and during, as a
 * line to print (the attack tests of the token index print figures, never assert them).
 */
import { execFile } from 'node:child_process'
import { expect } from 'vitest'

const SCRIPT =
  'const [url,tok,n,ms]=process.argv.slice(1);const end=Date.now()+Number(ms);const codes={};' +
  "const loop=async()=>{while(Date.now()<end){const r=await fetch(url+'/v1/tokens/attenuate',{method:'POST'," +
  "headers:{authorization:'Bearer '+tok,'content-type':'application/json'},body:JSON.stringify({ttlSeconds:2})});" +
  'await r.text();codes[r.status]=(codes[r.status]||0)+1}};' +
  'Promise.all(Array.from({length:Number(n)},loop)).then(()=>console.log(JSON.stringify(codes)))'

/** POST /v1/tokens/attenuate with `token` as bearer; the status. */
export async function attenuate(url: string, token: string): Promise<number> {
  const r = await fetch(`${url}/v1/tokens/attenuate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ttlSeconds: 2 }),
  })
  await r.text()
  return r.status
}

/** The victim's figures beside an attenuation flood of `attacker`, as one line. */
export async function attenuationFlood(
  url: string,
  appId: string,
  attacker: string,
  victim: string,
): Promise<string> {
  const invoke = async () => {
    const t0 = performance.now()
    const r = await fetch(`${url}/v1/apps/${appId}/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${victim}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'hi' }),
    })
    await r.text()
    expect(r.status).toBe(200)
    return performance.now() - t0
  }
  const victimAttenuate = async () => {
    const t0 = performance.now()
    expect(await attenuate(url, victim)).toBe(201)
    return performance.now() - t0
  }
  const quiet: number[] = []
  const quietAtt: number[] = []
  for (let i = 0; i < 5; i++) quiet.push(await invoke())
  for (let i = 0; i < 3; i++) quietAtt.push(await victimAttenuate())
  const flood = new Promise<Record<string, number>>((resolve, reject) => {
    execFile(process.execPath, ['-e', SCRIPT, url, attacker, '8', '4000'], (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout)),
    )
  })
  await new Promise((r) => setTimeout(r, 1000))
  const busy: number[] = []
  const busyAtt: number[] = []
  for (let i = 0; i < 5; i++) busy.push(await invoke())
  for (let i = 0; i < 3; i++) busyAtt.push(await victimAttenuate())
  const codes = await flood
  const f = (a: number[]) => a.map((t) => t.toFixed(0)).join(',')
  return `victim invoke ms quiet ${f(quiet)} during ${f(busy)}; attacker's attenuations in 4 s: ${JSON.stringify(codes)}; victim's own attenuation ms quiet ${f(quietAtt)} during ${f(busyAtt)}`
}
