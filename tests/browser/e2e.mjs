// The browser page (local/web) end to end in headless Debian Chromium, driven by playwright-core.
// Started by tests/tests/browser.rs with a local stack running; everything comes in the environment:
//   FILES_API_URL      the gateway (http://127.0.0.1:<port>)
//   FILES_WEB_ROOT     local/web, served here from another origin than the API, so that CORS on the
//                      gateway and on the bucket are both exercised
//   FILES_PHOTO        a JPEG to upload (single PUT), FILES_PHOTO_SHA256 its SHA-256
//   FILES_BIG          a file above the stack's multipart threshold, FILES_BIG_SHA256 its SHA-256
//   FILES_OUT_DIR      where the screenshot goes
// The first PUT of part 2 of the big file is answered 500 by request interception: Uppy must retry
// it with a re-signed URL (signPart -> GET /v1/uploads/{id}?part_numbers=2).

import { chromium } from 'playwright-core'
import http from 'node:http'
import fs from 'node:fs/promises'
import path from 'node:path'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}
const apiUrl = env('FILES_API_URL')
const webRoot = env('FILES_WEB_ROOT')
const outDir = env('FILES_OUT_DIR')
const photo = env('FILES_PHOTO')
const big = env('FILES_BIG')
const expected = { [path.basename(photo)]: env('FILES_PHOTO_SHA256'), [path.basename(big)]: env('FILES_BIG_SHA256') }

const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.map': 'application/json' }

// The page's own origin: a plain static server on another port than the API.
function serveWebRoot () {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x')
    let rel = decodeURIComponent(url.pathname)
    if (rel.endsWith('/')) rel += 'index.html'
    const file = path.join(webRoot, path.normalize(rel))
    if (!file.startsWith(webRoot)) { res.writeHead(403).end(); return }
    try {
      const body = await fs.readFile(file)
      res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

const started = Date.now()
const log = (...args) => console.log(`[browser ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args)

const server = await serveWebRoot()
const pageOrigin = `http://127.0.0.1:${server.address().port}`
const browser = await chromium.launch({
  executablePath: process.env.FILES_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // As root, without a sandbox; and no background traffic to hosts this network refuses.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
let failed = false
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (msg) => { if (msg.type() === 'error') log('console error:', msg.text()) })

  // Fail the first PUT of part 2, as a flaky network would; count every part PUT.
  const partPuts = new Map()
  await page.route((url) => url.searchParams.has('partNumber') && url.searchParams.has('uploadId'), async (route) => {
    const request = route.request()
    if (request.method() !== 'PUT') return route.continue()
    const part = new URL(request.url()).searchParams.get('partNumber')
    const count = (partPuts.get(part) || 0) + 1
    partPuts.set(part, count)
    if (part === '2' && count === 1) {
      log('interception: answering 500 to the first PUT of part 2')
      return route.fulfill({ status: 500, body: 'injected failure', headers: { 'access-control-allow-origin': '*' } })
    }
    return route.continue()
  })

  await page.goto(`${pageOrigin}/?api=${encodeURIComponent(apiUrl)}`)
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 })
  if (new URL(apiUrl).origin === pageOrigin) throw new Error('the page must come from another origin than the API')
  log('page ready from', pageOrigin, 'talking to', apiUrl)

  await page.locator('.uppy-Dashboard-input').first().setInputFiles([photo, big])
  await page.locator('.uppy-StatusBar-actionBtn--upload').click()
  log('uploading')

  // Both tiles ready, the photo's with its thumbnail.
  const photoTile = page.locator('li.tile', { hasText: path.basename(photo) })
  const bigTile = page.locator('li.tile', { hasText: path.basename(big) })
  await photoTile.locator('.thumb img').waitFor({ timeout: 60_000 })
  await bigTile.and(page.locator('[data-status="ready"]')).waitFor({ timeout: 60_000 })
  const thumbnailLoaded = await photoTile.locator('.thumb img').evaluate((img) => img.decode().then(() => img.naturalWidth > 0))
  if (!thumbnailLoaded) throw new Error('the thumbnail image did not load')
  log('gallery shows both files, the photo with its thumbnail')
  // Who uploaded it: the page's development token names no person, so its subject.
  const who = await photoTile.locator('.details').getAttribute('title')
  if (who !== 'uploaded by dev, last changed by dev') throw new Error(`tile says ${JSON.stringify(who)}`)
  log('the tile says who uploaded the photo:', who)

  // Download each through its presigned link, from the page (a cross-origin GET to the bucket).
  for (const tile of [photoTile, bigTile]) {
    const name = await tile.locator('.name').textContent()
    const href = await tile.locator('a.download').getAttribute('href')
    const digest = await page.evaluate(async (url) => {
      const resp = await fetch(url)
      if (!resp.ok) throw new Error(`download: ${resp.status}`)
      const hash = await crypto.subtle.digest('SHA-256', await resp.arrayBuffer())
      return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('')
    }, href)
    if (digest !== expected[name]) throw new Error(`${name}: downloaded SHA-256 ${digest}, uploaded ${expected[name]}`)
    log(`${name}: downloaded bytes match (sha256 ${digest.slice(0, 12)}…)`)
  }

  const stats = await page.evaluate(() => window.filesPage.stats)
  if ((partPuts.get('2') || 0) < 2) throw new Error(`part 2 was not retried: ${JSON.stringify([...partPuts])}`)
  if (stats.resignedParts < 1) throw new Error('the retried part was not re-signed')
  log('part PUTs:', JSON.stringify(Object.fromEntries(partPuts)), 'parts re-signed:', stats.resignedParts)
  if (problems.length) throw new Error(problems.join('\n'))

  await fs.mkdir(outDir, { recursive: true })
  const shot = path.join(outDir, 'gallery.png')
  await page.screenshot({ path: shot, fullPage: true })
  log('screenshot:', shot)

  // Trash: the file leaves the gallery (listings leave the trash out).
  await bigTile.locator('button.trash').click()
  await bigTile.waitFor({ state: 'detached', timeout: 10_000 })
  await photoTile.waitFor()
  log('trashed', path.basename(big), '- gone from the gallery')
} catch (error) {
  failed = true
  console.error(error)
  try {
    const pages = browser.contexts().flatMap((c) => c.pages())
    if (pages[0]) {
      await fs.mkdir(outDir, { recursive: true })
      await pages[0].screenshot({ path: path.join(outDir, 'failure.png'), fullPage: true })
    }
  } catch {}
} finally {
  await browser.close()
  server.close()
}
log(failed ? 'FAILED' : 'passed')
process.exit(failed ? 1 : 0)
