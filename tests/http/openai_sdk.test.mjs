// The orchestrator's HTTP door with the official `openai` client, against a
// live cluster on the simulator. Started by tests/e2e/openai_http_test.cc,
// which passes the addresses and the answer the gRPC door gave:
//   MOA_BASE_URL  http://127.0.0.1:PORT/v1     MOA_API_KEY     a valid key
//   MOA_SIM_URL   http://127.0.0.1:PORT        MOA_EXPECTED    gRPC's answer to "Hello"
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

const baseURL = process.env.MOA_BASE_URL;
const apiKey = process.env.MOA_API_KEY;
const simURL = process.env.MOA_SIM_URL;
const expected = process.env.MOA_EXPECTED;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const hello = [{ role: 'user', content: 'Hello' }];

async function simRequests(since) {
  const res = await fetch(`${simURL}/sim/requests?since=${since}`);
  return (await res.json()).requests;
}
async function lastSimId() {
  const all = await simRequests(0);
  return all.length ? all[all.length - 1].id : 0;
}

test('non-streaming completion has the gRPC door\'s text, summed usage and the moa extension',
  async () => {
    const c = await client.chat.completions.create({ model: 'moa', messages: hello });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.model, 'moa');
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0].message.role, 'assistant');
    assert.equal(c.choices[0].message.content, expected);
    assert.equal(c.choices[0].finish_reason, 'stop');
    const perModel = c.moa.usage;
    assert.equal(perModel.length, 3);
    const prompt = perModel.reduce((s, u) => s + u.prompt_tokens, 0);
    const completion = perModel.reduce((s, u) => s + u.completion_tokens, 0);
    assert.equal(c.usage.prompt_tokens, prompt);
    assert.equal(c.usage.completion_tokens, completion);
    assert.equal(c.usage.total_tokens, prompt + completion);
    assert.deepEqual(c.moa.proposals.map((p) => [p.layer, p.model, p.outcome]).sort(),
      [[1, 'a', 'ok'], [1, 'b', 'ok']]);
    assert.equal(c.moa.layer_durations.length, 1);
    assert.equal(c.moa.answer.model, 'z');
  });

test('content parts of type text are joined', async () => {
  const c = await client.chat.completions.create({
    model: 'moa',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hel' }, { type: 'text', text: 'lo' }] }],
  });
  assert.equal(c.choices[0].message.content, expected);
});

test('streaming: role first, content pieces, finish reason, usage chunk, then the end', async () => {
  const stream = await client.chat.completions.create({
    model: 'moa', messages: hello, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, expected);
  assert.ok(chunks.filter((c) => c.choices[0]?.delta?.content).length >= 1);
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.total_tokens > 0);
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream');
});

test('the models list has the pipelines', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['agent', 'json', 'moa', 'prose', 'schema', 'slow']);
});

test('a missing key is 401', async () => {
  const res = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'moa', messages: hello }),
  });
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.equal(body.error.type, 'authentication_error');
  assert.match(body.error.message, /missing API key/);
});

test('a wrong key is 401 and the key is not echoed', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-wrong-0000', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'moa', messages: hello }), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    assert.ok(!JSON.stringify(e.error).includes('sk-wrong-0000'));
    return true;
  });
});

test('an unknown model is 404 model_not_found', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gpt-17', messages: hello }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    assert.match(e.message, /gpt-17/);
    return true;
  });
});

test('n=2 is 400 naming the param', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'moa', messages: hello, n: 2 }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'n');
      return true;
    });
});

test('tool kinds, structured outputs and other fields this server does not honour are 400 naming them, never ignored',
  async () => {
    const refused = [
      [{ tools: [{ type: 'custom', custom: { name: 'get_weather' } }] }, 'tools[0].type'],
      [{ functions: [{ name: 'get_weather' }] }, 'functions'],
      [{ response_format: { type: 'xml' } }, 'response_format.type'],
      [{ logprobs: true }, 'logprobs'],
      [{ frequency_penalty: 0.5 }, 'frequency_penalty'],
      [{ top_k: 40 }, 'top_k'],
    ];
    for (const [extra, param] of refused) {
      await assert.rejects(
        client.chat.completions.create({ model: 'moa', messages: hello, ...extra }), (e) => {
          assert.ok(e instanceof OpenAI.BadRequestError, param);
          assert.equal(e.param, param);
          assert.ok(e.message.startsWith(`400 ${param} `), e.message);
          return true;
        });
    }
    // The same fields at their defaults ask for nothing: answered.
    const c = await client.chat.completions.create({
      model: 'moa', messages: hello, tools: [], frequency_penalty: 0, logprobs: false,
      response_format: { type: 'text' }, user: 'end-user-1',
    });
    assert.ok(c.choices[0].message.content.length > 0);
  });

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city now',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test('tools: the final step calls a tool, the panel sees the loop in words, the result is answered',
  async () => {
    let since = await lastSimId();
    const messages = [{ role: 'user', content: 'What is the weather in Oslo?' }];
    const first = await client.chat.completions.create({
      model: 'agent', messages, tools: [weatherTool], tool_choice: 'auto',
    });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Oslo' });
    let upstream = await simRequests(since);
    const byModel = (m) => upstream.filter((r) => r.model === m);
    assert.equal(byModel('a').length, 1);
    assert.equal(byModel('a')[0].params.tools, undefined, 'a proposer gets no tools');
    assert.equal(byModel('b')[0].params.tools, undefined);
    assert.equal(byModel('tz').length, 1);
    assert.equal(byModel('tz')[0].params.tools[0].function.name, 'get_weather');
    assert.equal(byModel('tz')[0].params.tool_choice, 'auto');

    // The client runs the tool and asks again.
    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: '12 C, clear' });
    since = await lastSimId();
    const second = await client.chat.completions.create({ model: 'agent', messages, tools: [weatherTool] });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.content, 'It is 12 C in Oslo.');
    upstream = await simRequests(since);
    for (const m of ['a', 'b']) {
      const sent = byModel(m)[0].messages;
      assert.ok(sent.every((x) => x.role !== 'tool' && !x.tool_calls), JSON.stringify(sent));
      assert.match(sent[1].content, /\[called tool get_weather with arguments \{"city": ?"Oslo"\}\]/);
      assert.equal(sent[2].role, 'user');
      assert.equal(sent[2].content, '[result of tool get_weather]\n12 C, clear');
    }
    const final = byModel('tz')[0].messages;
    assert.equal(final[final.length - 1].role, 'tool');
    assert.equal(final[final.length - 1].tool_call_id, call.id);
    assert.match(final[0].content, /call it yourself/, 'the final step is told the panel had no tools');
  });

test('tools: a streamed answer of tool calls arrives as delta.tool_calls, then finish_reason tool_calls',
  async () => {
    const stream = await client.chat.completions.create({
      model: 'agent', messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools: [weatherTool], tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false, stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(deltas.length, 1);
    assert.equal(deltas[0].index, 0);
    assert.equal(deltas[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(deltas[0].function.arguments), { city: 'Oslo' });
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason).choices[0].finish_reason, 'tool_calls');
  });

test('tools: the SDK\'s runTools loop runs the tool and ends with the answer, streamed and not',
  async () => {
    for (const stream of [false, true]) {
      const seen = [];
      const runner = client.beta.chat.completions.runTools({
        model: 'agent',
        messages: [{ role: 'user', content: 'What is the weather in Oslo?' }],
        stream,
        tools: [{
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: weatherTool.function.parameters,
            parse: JSON.parse,
            function: async (args) => { seen.push(args); return '12 C'; },
          },
        }],
      });
      assert.equal(await runner.finalContent(), 'It is 12 C in Oslo.', `stream: ${stream}`);
      assert.deepEqual(seen, [{ city: 'Oslo' }], `stream: ${stream}`);
    }
  });

test('tools: refused with staircase streaming and with a vote, by name', async () => {
  await assert.rejects(client.chat.completions.create({
    model: 'agent', messages: hello, tools: [weatherTool], moa_streaming: 'staircase',
  }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'tools');
    assert.match(e.message, /staircase/);
    return true;
  });
});

const pixel = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

test('images go to the models that read them, the others get the text; a final step that cannot is 400',
  async () => {
    const messages = [{ role: 'user', content: [
      { type: 'text', text: 'What is in this image?' },
      { type: 'image_url', image_url: { url: pixel, detail: 'low' } }] }];
    const since = await lastSimId();
    const c = await client.chat.completions.create({ model: 'agent', messages });
    assert.equal(c.choices[0].message.content, 'It is 12 C in Oslo.');
    const upstream = await simRequests(since);
    // The user's turn as each model got it (the final step's comes after its system message).
    const sent = (m) => upstream.find((r) => r.model === m).messages.find((x) => x.role === 'user').content;
    assert.deepEqual(sent('a')[1], { type: 'image_url', image_url: { url: pixel, detail: 'low' } });
    assert.equal(sent('b'), 'What is in this image?', 'b reads no images: the text alone');
    assert.equal(sent('tz').find((p) => p.type === 'image_url').image_url.url, pixel);

    await assert.rejects(client.chat.completions.create({ model: 'moa', messages }), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, 'messages[0]');
      assert.match(e.message, /ends with model z, which reads no images/);
      return true;
    });
  });

const Weather = z.object({ city: z.string(), days: z.number().int() });

test('structured output: parse with a zod schema gets the checked JSON, whole or streamed', async () => {
  const since = await lastSimId();
  const c = await client.beta.chat.completions.parse({
    model: 'json', messages: hello, response_format: zodResponseFormat(Weather, 'weather'),
  });
  assert.deepEqual(c.choices[0].message.parsed, { city: 'Oslo', days: 3 });
  assert.equal(c.choices[0].message.content, '{"city": "Oslo", "days": 3}', 'the fence is dropped');
  // Every model of the pipeline was told the format, with the schema.
  const calls = await simRequests(since);
  assert.equal(calls.length, 3);
  for (const call of calls) {
    assert.equal(call.messages[0].role, 'system', call.model);
    assert.match(call.messages[0].content, /conforms to this JSON Schema \(named "weather"\)/);
  }
  // Streamed: the answer is held until checked, then sent in one piece.
  const stream = await client.chat.completions.create({
    model: 'json', messages: hello, stream: true, response_format: { type: 'json_object' },
  });
  const pieces = [];
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) pieces.push(chunk.choices[0].delta.content);
  }
  assert.deepEqual(pieces, ['{"city": "Oslo", "days": 3}']);
});

test('structured output: a model that follows the schema it is told in words (the simulator\'s)',
  async () => {
    const Forecast = z.object({ city: z.string().min(4), days: z.number().int().min(2), rain: z.boolean() });
    const c = await client.beta.chat.completions.parse({
      model: 'schema', messages: [{ role: 'user', content: 'Forecast for Oslo?' }],
      response_format: zodResponseFormat(Forecast, 'forecast'),
    });
    assert.deepEqual(c.choices[0].message.parsed, { city: 'ssss', days: 2, rain: true });
  });

test('a structured answer that never conforms is asked again once, then a 500 naming response_format',
  async () => {
    const since = await lastSimId();
    await assert.rejects(
      client.chat.completions.create({
        model: 'prose', messages: hello, response_format: zodResponseFormat(Weather, 'weather'),
      }), (e) => {
        assert.equal(e.status, 500);
        assert.match(e.message, /response_format: the final answer by prose did not conform after it was asked again: the answer is not JSON/);
        return true;
      });
    const again = (await simRequests(since)).filter((r) => r.model === 'prose');
    assert.equal(again.length, 2);
    const turn = again[1].messages.slice(-2);
    assert.deepEqual(turn.map((m) => m.role), ['assistant', 'user']);
    assert.equal(turn[0].content, 'It will rain in Oslo.');
    assert.match(turn[1].content, /^That answer was not accepted: the answer is not JSON/);
  });

test('a schema whose check this server refuses is 400 naming the schema and the keyword', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'json', messages: hello,
      response_format: { type: 'json_schema', json_schema: { name: 'w', schema: { type: 'string', pattern: '^a+$' } } },
    }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'response_format.json_schema.schema');
      assert.match(e.message, /'pattern' is not supported/);
      return true;
    });
});

test('an invalid parameter value is 400 naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'moa', messages: hello, temperature: 5 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'temperature');
      return true;
    });
});

test('an oversized body is 413', async () => {
  const big = 'x'.repeat(5 * 1024 * 1024);
  await assert.rejects(
    client.chat.completions.create({ model: 'moa', messages: [{ role: 'user', content: big }] }),
    (e) => {
      assert.equal(e.status, 413);
      return true;
    });
});

test('bad JSON is 400', async () => {
  const res = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: '{"model": "moa", "messages": [',
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.type, 'invalid_request_error');
});

test('aborting mid-stream closes every upstream request within 200 ms', async () => {
  const since = await lastSimId();
  const stream = await client.chat.completions.create({ model: 'slow', messages: hello, stream: true });
  // Wait until both slow proposers are streaming upstream.
  for (let i = 0; i < 100; i++) {
    const open = (await simRequests(since)).filter((r) => r.outcome === 'in_progress');
    if (open.length === 2) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 200));
  const aborted = Date.now();
  stream.controller.abort();
  let closed = false;
  while (Date.now() - aborted < 200) {
    const reqs = await simRequests(since);
    if (reqs.length === 2 && reqs.every((r) => r.outcome === 'client_closed')) {
      closed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(closed, JSON.stringify(await simRequests(since)));
});

// The Responses API (POST /v1/responses) with the same client.
test('responses.create: the answer as a Response; output_text, usage, stored nothing', async () => {
  const r = await client.responses.create({ model: 'moa', input: 'Hello' });
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.match(r.id, /^resp_moa_/);
  assert.equal(r.output_text, expected);
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].content[0].type, 'output_text');
  assert.equal(r.store, false);
  assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
});

test('responses.create streamed: typed events in order, text deltas add up, then completed', async () => {
  const stream = await client.responses.create({
    model: 'moa', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hello' }] }], stream: true,
  });
  const events = [];
  for await (const e of stream) events.push(e);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created');
  assert.equal(types[1], 'response.in_progress');
  assert.equal(types[types.length - 1], 'response.completed');
  for (const t of ['response.output_item.added', 'response.content_part.added',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done']) {
    assert.ok(types.includes(t), t);
  }
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.equal(text, expected);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  assert.equal(events[events.length - 1].response.output[0].content[0].text, expected);
});

test('responses: a function tool is called, its output answered, streamed and not', async () => {
  const tools = [{
    type: 'function', name: 'get_weather', strict: false,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  }];
  const input = [{ role: 'user', content: 'What is the weather in Oslo?' }];
  const first = await client.responses.create({ model: 'agent', input, tools });
  const call = first.output.find((o) => o.type === 'function_call');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Oslo' });
  const second = await client.responses.create({
    model: 'agent', tools,
    input: [...input, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: '12 C' }],
  });
  assert.equal(second.output_text, 'It is 12 C in Oslo.');

  const stream = await client.responses.create({ model: 'agent', input, tools, stream: true });
  let done;
  for await (const e of stream) {
    if (e.type === 'response.function_call_arguments.done') done = e;
  }
  assert.deepEqual(JSON.parse(done.arguments), { city: 'Oslo' });
});

test('responses: text.format json_schema gets checked JSON', async () => {
  const r = await client.responses.create({
    model: 'json', input: 'Weather for Oslo?',
    text: { format: { type: 'json_schema', name: 'weather', strict: true,
      schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } },
        required: ['city', 'days'], additionalProperties: false } } },
  });
  assert.deepEqual(JSON.parse(r.output_text), { city: 'Oslo', days: 3 });
  assert.equal(r.text.format.type, 'json_schema');
});

test('responses: what needs stored state or is not honoured is 400 naming it', async () => {
  const refused = [
    [{ previous_response_id: 'resp_123' }, 'previous_response_id'],
    [{ store: true }, 'store'],
    [{ reasoning: { effort: 'high' } }, 'reasoning'],
    [{ tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0].type'],
  ];
  for (const [extra, param] of refused) {
    await assert.rejects(client.responses.create({ model: 'moa', input: 'Hello', ...extra }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, param);
      assert.equal(e.param, param);
      assert.ok(e.message.startsWith(`400 ${param} `), e.message);
      return true;
    });
  }
});
