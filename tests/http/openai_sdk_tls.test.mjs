// The official `openai` client against the orchestrator's HTTPS door (a
// throw-away CA, trusted through NODE_EXTRA_CA_CERTS). Started by
// tests/e2e/tls_test.cc:
//   MOA_BASE_URL  https://localhost:PORT/v1
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.MOA_BASE_URL, apiKey: 'unused', maxRetries: 0 });
const hello = [{ role: 'user', content: 'Hello over TLS' }];

test('a completion over HTTPS', async () => {
  const c = await client.chat.completions.create({ model: 'moa', messages: hello });
  assert.match(c.choices[0].message.content, /synthesis of 2 responses/);
  assert.equal(c.choices[0].finish_reason, 'stop');
});

test('a streamed completion over HTTPS arrives whole', async () => {
  const stream = await client.chat.completions.create({ model: 'moa', messages: hello, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.match(text, /synthesis of 2 responses/);
  assert.equal(finish, 'stop');
});
