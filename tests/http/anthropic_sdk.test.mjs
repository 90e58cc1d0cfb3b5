// The orchestrator's Anthropic Messages door (POST /v1/messages) with the
// official @anthropic-ai/sdk client, against a live cluster on the
// simulator. Started by tests/e2e/openai_http_test.cc, which passes:
//   MOA_BASE_URL  http://127.0.0.1:PORT      MOA_API_KEY   a valid key
//   MOA_SIM_URL   http://127.0.0.1:PORT      MOA_EXPECTED  gRPC's answer to "Hello"
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.MOA_BASE_URL;
const apiKey = process.env.MOA_API_KEY;
const simURL = process.env.MOA_SIM_URL;
const expected = process.env.MOA_EXPECTED;
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const hello = [{ role: 'user', content: 'Hello' }];

async function simRequests(since) {
  const res = await fetch(`${simURL}/sim/requests?since=${since}`);
  return (await res.json()).requests;
}
async function lastSimId() {
  const all = await simRequests(0);
  return all.length ? all[all.length - 1].id : 0;
}

const weatherTool = {
  name: 'get_weather',
  description: 'The weather in a city now',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

test('messages.create: the pipeline\'s answer as a Message, usage of every call', async () => {
  const m = await client.messages.create({ model: 'moa', max_tokens: 200, messages: hello });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'moa');
  assert.match(m.id, /^msg_moa_/);
  assert.equal(m.content.length, 1);
  assert.equal(m.content[0].type, 'text');
  assert.equal(m.content[0].text, expected);
  assert.equal(m.stop_reason, 'end_turn');
  assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
  assert.equal(m.moa.answer.model, 'z');
});

test('messages.stream: text deltas add up to the answer; the final message is whole', async () => {
  const stream = client.messages.stream({ model: 'moa', max_tokens: 200, messages: hello });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, expected);
  assert.equal(final.content[0].text, expected);
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.output_tokens > 0);
});

test('a system prompt of text blocks reaches every model as the system message', async () => {
  const since = await lastSimId();
  await client.messages.create({
    model: 'moa', max_tokens: 200, messages: hello,
    system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
    metadata: { user_id: 'end-user-7' },
  });
  const upstream = await simRequests(since);
  assert.equal(upstream.length, 3);
  for (const r of upstream) {
    assert.equal(r.messages[0].role, 'system');
    assert.match(r.messages[0].content, /^Be brief\./);
  }
});

test('tools: tool_use, then the tool_result answered; the panel saw the loop in words', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Oslo?' }];
  const first = await client.messages.create({
    model: 'agent', max_tokens: 200, messages, tools: [weatherTool],
  });
  assert.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Oslo' });
  messages.push({ role: 'assistant', content: first.content });
  messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '12 C' }] });
  const since = await lastSimId();
  const second = await client.messages.create({
    model: 'agent', max_tokens: 200, messages, tools: [weatherTool],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.equal(second.content[0].text, 'It is 12 C in Oslo.');
  const upstream = await simRequests(since);
  const final = upstream.find((r) => r.model === 'tz');
  assert.equal(final.params.tools[0].function.name, 'get_weather');
  assert.equal(final.messages[final.messages.length - 1].role, 'tool');
  assert.equal(final.messages[final.messages.length - 1].tool_call_id, use.id);
  for (const r of upstream.filter((x) => x.model !== 'tz')) {
    assert.equal(r.params.tools, undefined);
    assert.ok(r.messages.some((x) => x.content === '[result of tool get_weather]\n12 C'),
      JSON.stringify(r.messages));
  }
});

test('tools: a streamed tool_use arrives whole in the final message', async () => {
  const stream = client.messages.stream({
    model: 'agent', max_tokens: 200, tools: [weatherTool],
    tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
    messages: [{ role: 'user', content: 'Weather in Oslo?' }],
  });
  const final = await stream.finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  const use = final.content.find((b) => b.type === 'tool_use');
  assert.deepEqual(use.input, { city: 'Oslo' });
});

test('an image block reaches the models that read images as a data URL', async () => {
  const since = await lastSimId();
  const m = await client.messages.create({
    model: 'agent', max_tokens: 100,
    messages: [{ role: 'user', content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'text', text: 'What is this?' }] }],
  });
  assert.equal(m.content[0].text, 'It is 12 C in Oslo.');
  const upstream = await simRequests(since);
  const user = (m) => upstream.find((r) => r.model === m).messages.find((x) => x.role === 'user').content;
  const tz = user('tz');
  assert.equal(tz.find((p) => p.type === 'image_url').image_url.url, 'data:image/png;base64,iVBORw0KGgo=');
  assert.equal(user('b'), 'What is this?');
});

test('fields this server does not honour are 400 naming them; errors have Anthropic\'s shape',
  async () => {
    const refused = [
      [{ top_k: 5 }, /^top_k /],
      [{ thinking: { type: 'enabled', budget_tokens: 2000 } }, /^thinking /],
      [{ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] },
        /^messages\[0\]\.content\[0\]\.type /],
      [{ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /^tools\[0\]\.type /],
    ];
    for (const [extra, message] of refused) {
      await assert.rejects(
        client.messages.create({ model: 'moa', max_tokens: 100, messages: hello, ...extra }), (e) => {
          assert.ok(e instanceof Anthropic.BadRequestError, String(e));
          assert.equal(e.error.type, 'error');
          assert.equal(e.error.error.type, 'invalid_request_error');
          assert.match(e.error.error.message, message);
          return true;
        });
    }
    await assert.rejects(client.messages.create({ model: 'nope', max_tokens: 10, messages: hello }),
      (e) => {
        assert.ok(e instanceof Anthropic.NotFoundError);
        assert.equal(e.error.error.type, 'not_found_error');
        return true;
      });
    const wrong = new Anthropic({ baseURL, apiKey: 'sk-wrong-1234', maxRetries: 0 });
    await assert.rejects(wrong.messages.create({ model: 'moa', max_tokens: 10, messages: hello }),
      (e) => {
        assert.ok(e instanceof Anthropic.AuthenticationError);
        assert.equal(e.error.error.type, 'authentication_error');
        assert.ok(!JSON.stringify(e.error).includes('sk-wrong-1234'));
        return true;
      });
  });
