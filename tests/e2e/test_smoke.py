from support.client import PamClient, chat_frame


async def test_demo_chat_streams_to_a_final_response(stack):
    stack.orchestrator()
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url("/ws/u1?token=demo-token")) as client:
        hello = await client.recv()
        assert hello["type"] == "connection" and hello["mode"] == "demo"
        await client.send(chat_frame("I spent $12 on fuel", "u1"))
        frames = await client.answer()
    assert frames[-1]["type"] == "chat_response"
