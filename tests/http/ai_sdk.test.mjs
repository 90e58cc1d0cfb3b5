// The chat-completions door with the Vercel AI SDK (`ai` and
// `@ai-sdk/openai-compatible`), as apps built on it use a model: a
// multi-step tool loop, a typed object, streamed text. Started by
// tests/e2e/openai_http_test.cc (MOA_BASE_URL ends in /v1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateObject, generateText, stepCountIs, streamText, tool } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';

const moa = createOpenAICompatible({
  name: 'moa',
  baseURL: process.env.MOA_BASE_URL,
  apiKey: process.env.MOA_API_KEY,
  supportsStructuredOutputs: true,
  includeUsage: true,  // Streams ask for the usage chunk.
});
const expected = process.env.MOA_EXPECTED;

function weatherTool(seen) {
  return tool({
    description: 'The weather in a city now',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => { seen.push(city); return '12 C'; },
  });
}

test('generateText with tools: the call is run, its result answered, in two steps', async () => {
  const seen = [];
  const result = await generateText({
    model: moa('agent'),
    prompt: 'What is the weather in Oslo?',
    tools: { get_weather: weatherTool(seen) },
    stopWhen: stepCountIs(3),
    maxRetries: 0,
  });
  assert.deepEqual(seen, ['Oslo']);
  assert.equal(result.steps.length, 2);
  assert.equal(result.steps[0].finishReason, 'tool-calls');
  assert.deepEqual(result.steps[0].toolCalls[0].input, { city: 'Oslo' });
  assert.equal(result.text, 'It is 12 C in Oslo.');
  assert.equal(result.finishReason, 'stop');
});

test('streamText with tools: the same loop, streamed', async () => {
  const seen = [];
  const result = streamText({
    model: moa('agent'),
    prompt: 'What is the weather in Oslo?',
    tools: { get_weather: weatherTool(seen) },
    stopWhen: stepCountIs(3),
    maxRetries: 0,
  });
  let text = '';
  for await (const piece of result.textStream) text += piece;
  assert.deepEqual(seen, ['Oslo']);
  assert.equal(text, 'It is 12 C in Oslo.');
});

test('streamText: the answer streams as the gRPC door gives it', async () => {
  const result = streamText({ model: moa('moa'), prompt: 'Hello', maxRetries: 0 });
  let text = '';
  for await (const piece of result.textStream) text += piece;
  assert.equal(text, expected);
  assert.ok((await result.usage).totalTokens > 0);
});

test('generateObject: a schema-checked object', async () => {
  const { object } = await generateObject({
    model: moa('json'),
    schema: z.object({ city: z.string(), days: z.number().int() }),
    prompt: 'Weather for Oslo?',
    maxRetries: 0,
  });
  assert.deepEqual(object, { city: 'Oslo', days: 3 });
});
