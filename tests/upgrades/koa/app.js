// SPDX-License-Identifier: MIT
// A small notes API written against the Koa 2 documentation with plain
// middleware (no router), run unchanged on Koa 2.16.1 and 3.0.1
// (tests/upgrades/koa/README.md).
// Usage: node app.js NODE_MODULES_DIR PORT
'use strict'
const path = require('path')
const Koa = require(path.join(process.argv[2], 'koa'))
const port = Number(process.argv[3])

const notes = [
  { id: 1, title: 'buy milk', done: false },
  { id: 2, title: 'call the plumber', done: true }
]

const app = new Koa()

app.use(async (ctx, next) => {
  const m = /^\/api\/notes\/([0-9]+)$/.exec(ctx.path)
  if (ctx.method === 'GET' && ctx.path === '/api/health') {
    ctx.body = { ok: true }
  } else if (ctx.method === 'GET' && ctx.path === '/api/notes') {
    ctx.body = notes
  } else if (ctx.method === 'GET' && m) {
    const note = notes.find((n) => n.id === Number(m[1]))
    if (!note) ctx.throw(404, 'no such note')
    ctx.body = note
  } else if (ctx.method === 'GET' && ctx.path === '/api/search') {
    // The parsed query string.
    ctx.body = { query: ctx.query }
  } else if (ctx.method === 'GET' && ctx.path === '/api/draft') {
    // A JSON endpoint whose value may be null.
    ctx.type = 'json'
    ctx.body = null
  } else if (ctx.method === 'GET' && ctx.path === '/api/cancel') {
    // Back to where the user came from.
    ctx.redirect('back', '/api/notes')
  } else if (ctx.method === 'GET' && ctx.path === '/api/moved') {
    ctx.status = 301
    ctx.redirect('/api/notes')
  } else {
    await next()
  }
})

app.listen(port, '127.0.0.1')
