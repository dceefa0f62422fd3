// SPDX-License-Identifier: MIT
// A small inventory API written against the Fastify 4 documentation, run
// unchanged on Fastify 4.29.1 and 5.3.3 (tests/upgrades/fastify/README.md).
// It starts on both: nothing here is refused at start-up by 5.x, so every
// difference is a change of behavior at request time.
// Usage: node app.js NODE_MODULES_DIR PORT
'use strict'
const path = require('path')
const fastify = require(path.join(process.argv[2], 'fastify'))({ logger: false })
const port = Number(process.argv[3])

const items = new Map([
  [1, { id: 1, name: 'bolt', qty: 120 }],
  [2, { id: 2, name: 'nut', qty: 300 }],
  [3, { id: 3, name: 'washer', qty: 75 }]
])

// Unchanged across the upgrade.
fastify.get('/api/health', async () => ({ ok: true }))
fastify.get('/api/items', async () => [...items.values()])
fastify.get('/api/items/:id', async (request, reply) => {
  const item = items.get(Number(request.params.id))
  if (!item) return reply.code(404).send({ error: 'no such item' })
  return item
})
fastify.post('/api/items', {
  schema: {
    body: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string' }, qty: { type: 'integer' } }
    }
  }
}, async (request, reply) => {
  reply.code(201)
  return { id: 4, name: request.body.name, qty: request.body.qty || 0 }
})

// The query string (4.x also splits it at ';').
fastify.get('/api/search', async (request) => ({ query: request.query }))

// Which route answered (the 4.x request properties).
fastify.get('/api/route-info', async (request) => ({
  url: request.routeOptions.url,
  routerPath: request.routerPath,
  routerMethod: request.routerMethod
}))

// Host as seen by the app.
fastify.get('/api/whoami', async (request) => ({ hostname: request.hostname }))

// The client's address through request.connection.
fastify.get('/api/client', async (request) => ({ remote: request.connection.remoteAddress }))

// Server timing through reply.getResponseTime().
fastify.get('/api/timing', async (request, reply) => ({ fast: reply.getResponseTime() < 60000 }))

// A moved endpoint with the 4.x reply.redirect(code, url) signature.
fastify.get('/api/old-items', async (request, reply) => reply.redirect(301, '/api/items'))

// Delete: clients send Content-Type: application/json with no body.
fastify.delete('/api/items/:id', async (request) => ({ deleted: Number(request.params.id) }))

fastify.listen({ port, host: '127.0.0.1' })
