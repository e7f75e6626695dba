// The Files API in a browser: Uppy's Dashboard to pick or drop files (a progress bar each), its AWS
// S3 plugin (5.x, the callback API) mapped onto this API, and a gallery of the tenant's files.
//
// How the plugin's callbacks map onto the API:
// - a pre-processor declares every file with `POST /v1/uploads` before Uppy starts sending: the
//   server decides single PUT or multipart (FILES_MULTIPART_THRESHOLD_BYTES) and the part size, and
//   `shouldUseMultipart` / `getChunkSize` only repeat its answer;
// - getUploadParameters: the presigned PUT and its signed headers from that answer;
// - createMultipartUpload: the upload id (the S3 upload id stays on the server; Uppy's `key` and
//   `uploadId` are both our upload id);
// - signPart: the part URL from the answer the first time; a retry of a part, or a URL close to its
//   expiry, is re-signed with `GET /v1/uploads/{id}?part_numbers=N`;
// - listParts: `uploaded_parts` of `GET /v1/uploads/{id}` (what S3 holds, with ETags);
// - completeMultipartUpload: `POST /v1/uploads/{id}/complete` with each part's ETag;
// - abortMultipartUpload: `DELETE /v1/uploads/{id}`.
//
// Query parameters: `api` (the API's origin; default this page's), `token` (a bearer token;
// default: the local stack's development token from `/local/dev-token`).

import { Uppy, Dashboard, AwsS3 } from './node_modules/uppy/dist/uppy.min.mjs'

const params = new URLSearchParams(location.search)
const session = {
  api: (params.get('api') || location.origin).replace(/\/+$/, ''),
  token: params.get('token') || '',
}
// Never hand out a URL this close to its expiry: sign a fresh one instead.
const URL_EXPIRY_MARGIN_MS = 30_000
// Files up to this size are hashed in the page, so S3 verifies the bytes against the declared SHA-256.
const SHA256_MAX_BYTES = 64 * 1024 * 1024

// What the page exposes to tests (and to curious developers in the console).
const stats = { resignedParts: 0, createdUploads: 0 }
window.filesPage = { session, stats }

class ApiError extends Error {
  constructor (status, problem) {
    super(problem?.detail || problem?.message || `HTTP ${status}`)
    this.status = status
    this.problem = problem
  }
}

async function api (path, { method = 'GET', body, signal } = {}) {
  const headers = { authorization: `Bearer ${session.token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const resp = await fetch(session.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  })
  const text = await resp.text()
  const data = text ? JSON.parse(text) : null
  if (!resp.ok) throw new ApiError(resp.status, data)
  return data
}

async function ensureToken () {
  if (session.token) return
  const resp = await fetch(`${session.api}/local/dev-token`)
  if (!resp.ok) throw new Error('no token: paste one into the Token field (this API has no /local/dev-token)')
  const { token, tenant, subject } = await resp.json()
  session.token = token
  document.querySelector('#whoami').textContent = `${subject} @ ${tenant} (development token)`
}

async function sha256Hex (blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

// Uppy file id -> { created, error, single: {used}, parts: Map(partNumber -> {url, expiresAt, handedOut}) }
const uploads = new Map()
// getChunkSize gets the file's Blob, not the Uppy file: the server's part size, by Blob.
const partSizes = new WeakMap()

function remember (file, created) {
  const expiresAt = Date.parse(created.expires_at)
  const parts = new Map((created.parts || []).map((p) => [p.part_number, { url: p.url, expiresAt, handedOut: false }]))
  uploads.set(file.id, { created, single: { used: false }, parts })
  if (created.method === 'MULTIPART') partSizes.set(file.data, created.part_size)
}

function entry (file) {
  const u = uploads.get(file.id)
  if (!u) throw new Error('this file was not declared to the API')
  if (u.error) throw u.error
  return u
}

async function declare (fileId) {
  const file = uppy.getFile(fileId)
  if (uploads.get(fileId)?.created) return // a retry: the session (and what S3 holds) is kept
  const body = {
    name: file.name,
    size: file.size,
    content_type: file.type || 'application/octet-stream',
    // Dropping a file whose name exists adds a revision to it instead of failing.
    replace: true,
  }
  try {
    if (file.size <= SHA256_MAX_BYTES) body.sha256 = await sha256Hex(file.data)
    remember(file, await api('/v1/uploads', { method: 'POST', body }))
    stats.createdUploads++
  } catch (error) {
    // Reported by this file's getUploadParameters/createMultipartUpload, so only it fails.
    uploads.set(fileId, { error })
  }
}

const uppy = new Uppy({ id: 'files', autoProceed: false, debug: params.has('debug') })
  .use(Dashboard, {
    target: '#uploader',
    inline: true,
    height: 420,
    width: '100%',
    proudlyDisplayPoweredByUppy: false,
    showProgressDetails: true,
    note: 'Large files go up in parts, straight to S3.',
  })
  .use(AwsS3, {
    shouldUseMultipart: (file) => uploads.get(file.id)?.created?.method === 'MULTIPART',
    getChunkSize: (blob) => partSizes.get(blob) ?? 5 * 1024 * 1024,
    limit: 4,

    async getUploadParameters (file) {
      const u = entry(file)
      let { url, headers, expires_at: expiresAt } = u.created
      if (u.single.used || Date.parse(expiresAt) - Date.now() < URL_EXPIRY_MARGIN_MS) {
        ({ url, headers } = await api(`/v1/uploads/${u.created.upload_id}`))
      }
      u.single.used = true
      // The browser sets Content-Length itself (a forbidden header), to the exact body length
      // that was signed.
      const send = Object.fromEntries(Object.entries(headers || {}).filter(([name]) => name !== 'content-length'))
      return { method: 'PUT', url, headers: send }
    },

    async createMultipartUpload (file) {
      const { created } = entry(file)
      return { uploadId: created.upload_id, key: created.upload_id }
    },

    async signPart (file, { uploadId, partNumber, signal }) {
      const u = entry(file)
      const cached = u.parts.get(partNumber)
      if (cached && !cached.handedOut && cached.expiresAt - Date.now() > URL_EXPIRY_MARGIN_MS) {
        cached.handedOut = true
        return { url: cached.url }
      }
      // A retry of this part, or its URL is (nearly) expired: a fresh signature.
      const fresh = await api(`/v1/uploads/${uploadId}?part_numbers=${partNumber}`, { signal })
      const part = fresh.parts.find((p) => p.part_number === partNumber)
      u.parts.set(partNumber, { url: part.url, expiresAt: Date.parse(fresh.expires_at), handedOut: true })
      stats.resignedParts++
      return { url: part.url }
    },

    async listParts (file, { uploadId, signal }) {
      const state = await api(`/v1/uploads/${uploadId}`, { signal })
      return (state.uploaded_parts || []).map((p) => ({ PartNumber: p.part_number, Size: p.size, ETag: p.etag }))
    },

    async completeMultipartUpload (file, { uploadId, parts, signal }) {
      const list = [...parts]
        .sort((a, b) => a.PartNumber - b.PartNumber)
        .map((p) => ({ part_number: p.PartNumber, etag: p.ETag }))
      const done = await api(`/v1/uploads/${uploadId}/complete`, { method: 'POST', body: { parts: list }, signal })
      return { location: `${session.api}/v1/files/${done.id}` }
    },

    async abortMultipartUpload (file, { uploadId }) {
      try {
        await api(`/v1/uploads/${uploadId}`, { method: 'DELETE' })
      } catch (error) {
        // Already finished or gone: nothing left to abort.
        if (error.status !== 404 && error.status !== 409) throw error
      }
    },
  })

uppy.addPreProcessor((fileIDs) => Promise.all(fileIDs.map(declare)))

uppy.on('upload-success', async (file) => {
  const u = uploads.get(file.id)
  // A single PUT is processed when S3's event arrives; `complete` processes it now instead.
  if (u?.created?.method === 'PUT') {
    try {
      await api(`/v1/uploads/${u.created.upload_id}/complete`, { method: 'POST' })
    } catch (error) {
      console.warn('complete after PUT', error)
    }
  }
  refreshGallery()
})
uppy.on('complete', () => refreshGallery())

// ---- gallery ----

const gallery = document.querySelector('#gallery')
const galleryStatus = document.querySelector('#gallery-status')
let refreshTimer = null

function formatSize (bytes) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit++ }
  return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`
}

function tile (file) {
  const li = document.createElement('li')
  li.className = 'tile'
  li.dataset.fileId = file.id
  li.dataset.status = file.status
  const thumb = document.createElement('div')
  thumb.className = 'thumb'
  const src = file.thumbnails?.['256']
  if (src) {
    const img = document.createElement('img')
    img.src = src
    img.alt = file.name
    img.loading = 'lazy'
    thumb.append(img)
  } else {
    const kind = document.createElement('span')
    kind.className = 'kind'
    kind.textContent = file.content_type.split('/').pop().slice(0, 12)
    // The API says whether a thumbnail is still coming, and if none will, why.
    thumb.title = file.thumbnail_status === 'none'
      ? `no thumbnail (${file.thumbnail_reason.replaceAll('_', ' ')})`
      : file.thumbnail_status === 'pending' ? 'thumbnail coming' : ''
    thumb.append(kind)
  }
  const meta = document.createElement('div')
  meta.className = 'meta'
  const name = document.createElement('span')
  name.className = 'name'
  name.textContent = file.name
  const details = document.createElement('span')
  details.className = 'details'
  details.textContent = file.status === 'rejected'
    ? `rejected: ${file.rejection_reason}`
    : `${formatSize(file.size)} · rev ${file.revision}`
  // Who uploaded it and who changed it last: the token's name, else its email, else its subject.
  const who = (actor) => actor.name || actor.email || actor.id
  details.title = `uploaded by ${who(file.created_by)}, last changed by ${who(file.updated_by)}`
  meta.append(name, details)
  const actions = document.createElement('div')
  actions.className = 'actions'
  if (file.download_url) {
    const a = document.createElement('a')
    a.className = 'download'
    a.href = file.download_url
    a.textContent = 'Download'
    actions.append(a)
  }
  const trash = document.createElement('button')
  trash.className = 'trash'
  trash.type = 'button'
  trash.textContent = 'Trash'
  trash.addEventListener('click', async () => {
    trash.disabled = true
    try {
      await api(`/v1/files/${file.id}/trash`, { method: 'POST' })
    } catch (error) {
      galleryStatus.textContent = `trash failed: ${error.message}`
    }
    refreshGallery()
  })
  actions.append(trash)
  li.append(thumb, meta, actions)
  return li
}

// Thumbnails are made after a file is ready: keep looking, for a while, as long as the API says
// some recent file's thumbnails are still coming (`thumbnail_status: pending`).
function stillComing (file) {
  const recent = Date.now() - Date.parse(file.updated_at) < 60_000
  return recent && (file.status === 'pending' ||
    (file.status === 'ready' && file.thumbnail_status === 'pending'))
}

async function refreshGallery () {
  clearTimeout(refreshTimer)
  try {
    // One request for the whole page, thumbnails included.
    const page = await api('/v1/files?include=thumbnails&limit=60')
    gallery.replaceChildren(...page.items.map(tile))
    galleryStatus.textContent = page.items.length ? `${page.items.length} file(s)` : 'no files yet: drop some on the left'
    if (page.items.some(stillComing)) refreshTimer = setTimeout(refreshGallery, 1000)
  } catch (error) {
    galleryStatus.textContent = `could not list files: ${error.message}`
  }
}

// ---- session form ----

const apiInput = document.querySelector('#api')
const tokenInput = document.querySelector('#token')
apiInput.value = session.api
document.querySelector('#session').addEventListener('submit', async (event) => {
  event.preventDefault()
  session.api = apiInput.value.replace(/\/+$/, '')
  session.token = tokenInput.value.trim()
  document.querySelector('#whoami').textContent = session.token ? 'token from the field' : ''
  await start()
})
document.querySelector('#refresh').addEventListener('click', () => refreshGallery())

async function start () {
  try {
    await ensureToken()
    await refreshGallery()
    document.body.dataset.ready = 'true'
  } catch (error) {
    galleryStatus.textContent = error.message
  }
}

start()
