"""WebSocket peers for the end-to-end tests, on Debian's python3-websockets (run with
/usr/bin/python3, where Debian installs it). Both sides negotiate permessage-deflate by default.

  ws_peer.py server CERT KEY            TLS echo server on a free port; prints "ready <port>"
  ws_peer.py client PROXY_PORT HOST PORT CA [--plain] MESSAGE...
      connects through leakscope (CONNECT), sends each MESSAGE (a JSON list is sent as the
      fragments of one message; "b:..." as a binary message), prints each echo, one per line.
"""

import asyncio
import json
import socket
import ssl
import sys

import websockets


async def serve(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def echo(ws, path=None):
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx) as server:
        port = server.sockets[0].getsockname()[1]
        print("ready", port, flush=True)
        await asyncio.Future()


def tunnel(proxy_port, host, port):
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=20)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("proxy closed during CONNECT")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise SystemExit("CONNECT refused: " + answer.decode(errors="replace"))
    s.setblocking(False)
    return s


async def client(proxy_port, host, port, ca, compress, messages):
    ctx = ssl.create_default_context(cafile=ca)
    sock = tunnel(proxy_port, host, port)
    async with websockets.connect(f"wss://{host}:{port}/ws?sdk=1", sock=sock, ssl=ctx, server_hostname=host,
                                  compression="deflate" if compress else None) as ws:
        for m in messages:
            if m.startswith("["):
                await ws.send(json.loads(m))  # a list: one message in fragments
            elif m.startswith("b:"):
                await ws.send(m[2:].encode())
            else:
                await ws.send(m)
            echo = await ws.recv()
            print(echo.decode() if isinstance(echo, bytes) else echo, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    else:
        args = sys.argv[2:]
        compress = "--plain" not in args
        args = [a for a in args if a != "--plain"]
        asyncio.run(client(int(args[0]), args[1], int(args[2]), args[3], compress, args[4:]))
