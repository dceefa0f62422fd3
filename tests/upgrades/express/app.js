// SPDX-License-Identifier: MIT
// A small shop API written against the Express 4 API reference, run
// unchanged on Express 4.21.2 and 5.1.0 (tests/upgrades/express/README.md).
// The only version-dependent line is the wildcard route, whose Express 4
// syntax does not start on Express 5: it is migrated as the Express 5
// migration guide says ('/files/*' -> '/files/*splat').
// Usage: node app.js NODE_MODULES_DIR PORT
'use strict'
const path = require('path')
const express = require(path.join(process.argv[2], 'express'))
const version = require(path.join(process.argv[2], 'express', 'package.json')).version
const port = Number(process.argv[3])

const app = express()
app.use(express.json())
app.use(express.urlencoded())
app.use('/static', express.static(path.join(__dirname, 'static')))

const items = [
  { id: 1, name: 'tea', price: 3.5, tags: ['drink', 'hot'] },
  { id: 2, name: 'coffee', price: 4, tags: ['drink', 'hot'] },
  { id: 3, name: 'lemonade', price: 2.75, tags: ['drink', 'cold'] }
]

// Unchanged across the upgrade: plain JSON reads.
app.get('/api/health', (req, res) => res.json({ ok: true }))
app.get('/api/items', (req, res) => res.json(items))
app.get('/api/items/:id', (req, res) => {
  const item = items.find((i) => i.id === Number(req.params.id))
  if (!item) return res.status(404).json({ error: 'no such item' })
  res.json(item)
})

// The query string as the app sees it (nested keys: qs in 4, 'simple' in 5).
app.get('/api/search', (req, res) => res.json({ query: req.query }))

// The parsed form body (urlencoded: extended in 4, not in 5).
app.post('/api/forms', (req, res) => res.json({ form: req.body }))

// Whether a body was parsed at all (body-parser 2 leaves req.body unset).
app.get('/api/echo', (req, res) => res.json({ hasBody: req.body !== undefined, body: req.body }))

// Host as seen by the app (req.host keeps the port in 5).
app.get('/api/whoami', (req, res) => res.json({ host: req.host, hostname: req.hostname }))

// Create: the 4.x signature res.json(obj, status).
app.post('/api/items', (req, res) => {
  const item = { id: items.length + 1, name: String(req.body.name), price: Number(req.body.price), tags: [] }
  res.json(item, 201)
})

// Liveness for an old load balancer: res.send(status).
app.get('/api/ping', (req, res) => res.send(204))

// A legacy lookup by req.param().
app.get('/api/lookup', (req, res) => res.json({ name: req.param('name') }))

// Back to where the user came from.
app.get('/api/cancel', (req, res) => res.redirect('back'))

// A moved endpoint with the 4.x res.redirect(url, status) signature.
app.get('/api/old-items', (req, res) => res.redirect('/api/items', 301))

// Files under a wildcard.
app.get(version.startsWith('4.') ? '/files/*' : '/files/*splat', (req, res) => {
  res.json({ params: req.params })
})

app.listen(port, '127.0.0.1')
