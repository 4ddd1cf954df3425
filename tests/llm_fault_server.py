"""A loopback OpenAI-compatible server for tests/test_llm.py: `/v1` answers from the real local model
(`core.llm.openai_app`), `/fault/<mode>/v1` misbehaves. Run: python tests/llm_fault_server.py PORT."""
import asyncio, json, sys
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from mlportfolio.core.llm import openai_app

app = openai_app()            # /v1/chat/completions from the local backend (loaded on first request)
hits, seen_auth, switch, longest = Counter(), Counter(), {'fail': True}, {}

def _ok_route():
    return next(r for r in app.routes if getattr(r, 'path', '') == '/v1/chat/completions').endpoint

@app.post('/fault/{mode}/v1/chat/completions')
async def fault(mode: str, request: Request):
    hits[mode] += 1
    if request.headers.get('authorization'): seen_auth[mode] += 1
    body = await request.json()
    if mode == '429': return JSONResponse({'error': 'slow down'}, 429, headers={'Retry-After': '1'})
    if mode == '429once' and hits[mode] % 2 == 1: return JSONResponse({'error': 'slow down'}, 429, headers={'Retry-After': '1'})
    if mode == '500': return JSONResponse({'error': 'boom'}, 500)
    if mode == 'hang': await asyncio.sleep(60)
    if mode == 'badjson': return PlainTextResponse('{"choices": [', 200, media_type='application/json')
    if mode == 'switch' and switch['fail']: return JSONResponse({'error': 'down'}, 503)
    if mode == 'echo':  # no model: answers the first allowed choice and records how much text arrived
        longest['echo'] = max(len(m['content']) for m in body['messages'])
        enum = body['response_format']['json_schema']['schema']['properties']['answer']['enum']
        return dict(choices=[dict(index=0, message=dict(role='assistant', content=json.dumps(dict(answer=enum[0]))))],
                    usage=dict(prompt_tokens=0, completion_tokens=0))
    from mlportfolio.core.llm import ChatRequest
    return await asyncio.to_thread(_ok_route(), ChatRequest(**body))

@app.post('/control/switch')
def set_switch(fail: bool): switch['fail'] = fail; return switch

@app.get('/control/stats')
def stats(): return dict(hits=dict(hits), auth=dict(seen_auth), longest=longest)

if __name__ == '__main__':
    import uvicorn
    uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')
