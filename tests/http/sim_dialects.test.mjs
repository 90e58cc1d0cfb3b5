// The simulator speaks the Anthropic Messages and Gemini APIs as the vendors
// do: their own npm clients (@anthropic-ai/sdk, @google/genai), pointed at
// the simulator, read its streams and answers. This is what lets every
// test and the demo mix vendors offline. Started by
// tests/e2e/openai_http_test.cc, which passes MOA_SIM_URL (the simulator
// of a live cluster; model z there answers with a tool call).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';

const simURL = process.env.MOA_SIM_URL;
const anthropic = new Anthropic({ baseURL: simURL, apiKey: 'sk-ant-unused', maxRetries: 0 });
const genai = new GoogleGenAI({ apiKey: 'gemini-unused', httpOptions: { baseUrl: simURL } });

async function lastSimRequest() {
  const res = await fetch(`${simURL}/sim/requests`);
  const all = (await res.json()).requests;
  return all[all.length - 1];
}

test('anthropic: messages.stream reads the simulator\'s events into a Message', async () => {
  const stream = anthropic.messages.stream({
    model: 'a',
    max_tokens: 100,
    system: 'Be brief.',
    messages: [{ role: 'user', content: 'Hello' }],
  });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const message = await stream.finalMessage();
  assert.match(text, /\[a answer/);
  assert.equal(message.content[0].type, 'text');
  assert.equal(message.content[0].text, text);
  assert.equal(message.stop_reason, 'end_turn');
  assert.ok(message.usage.input_tokens > 0);
  assert.equal(message.usage.output_tokens, 12);
  const logged = await lastSimRequest();
  assert.equal(logged.params.system, 'Be brief.');
});

test('anthropic: a tool_use block, streamed and whole, and max_tokens', async () => {
  const tools = [{ name: 'get_weather', input_schema: { type: 'object' } }];
  const messages = [{ role: 'user', content: 'Weather in Oslo?' }];
  const streamed = await anthropic.messages
    .stream({ model: 'z', max_tokens: 100, tools, messages })
    .finalMessage();
  assert.equal(streamed.stop_reason, 'tool_use');
  const call = streamed.content.find((b) => b.type === 'tool_use');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(call.input, { city: 'Oslo' });
  const whole = await anthropic.messages.create({ model: 'z', max_tokens: 100, tools, messages });
  assert.deepEqual(whole.content[0].input, { city: 'Oslo' });
  const cut = await anthropic.messages.create({
    model: 'a', max_tokens: 3, messages: [{ role: 'user', content: 'Hello' }],
  });
  assert.equal(cut.stop_reason, 'max_tokens');
  assert.equal(cut.usage.output_tokens, 3);
});

test('anthropic: a request the API would refuse is an invalid_request_error', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'a', max_tokens: 10, messages: [] }),
    (e) => e.status === 400 && e.error?.error?.type === 'invalid_request_error',
  );
});

test('gemini: generateContentStream reads the simulator\'s chunks', async () => {
  const stream = await genai.models.generateContentStream({
    model: 'b',
    contents: 'Hello',
    config: { systemInstruction: 'Be brief.' },
  });
  let text = '';
  let last;
  for await (const chunk of stream) {
    text += chunk.text ?? '';
    last = chunk;
  }
  assert.match(text, /\[b answer/);
  assert.equal(last.candidates[0].finishReason, 'STOP');
  assert.ok(last.usageMetadata.promptTokenCount > 0);
  assert.equal(last.usageMetadata.candidatesTokenCount, 12);
  const logged = await lastSimRequest();
  assert.equal(logged.params.systemInstruction.parts[0].text, 'Be brief.');
});

test('gemini: a function call, streamed and whole, and maxOutputTokens', async () => {
  const config = { tools: [{ functionDeclarations: [{ name: 'get_weather' }] }] };
  const stream = await genai.models.generateContentStream({
    model: 'z', contents: 'Weather in Oslo?', config,
  });
  const calls = [];
  for await (const chunk of stream) calls.push(...(chunk.functionCalls ?? []));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(calls[0].args, { city: 'Oslo' });
  const whole = await genai.models.generateContent({ model: 'z', contents: 'Weather?', config });
  assert.deepEqual(whole.functionCalls[0].args, { city: 'Oslo' });
  const cut = await genai.models.generateContent({
    model: 'a', contents: 'Hello', config: { maxOutputTokens: 3 },
  });
  assert.equal(cut.candidates[0].finishReason, 'MAX_TOKENS');
});
