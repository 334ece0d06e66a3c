#!/usr/bin/env python3
"""Writes the seed corpora (corpus/<target>/): small inputs shaped like real traffic for each
fuzz target, so the fuzzer starts from there. Deterministic; rerun after changing it. Inputs
that `make fuzz` finds crashing are added to the same folders once fixed."""

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def gzip_fixed(data):
    return gzip.compress(data, mtime=0)


def ws_frame(opcode, payload, fin=True, rsv1=False):
    key = b"\x37\xfa\x21\x3d"
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def client_hello():
    """A minimal TLS ClientHello with SNI and ALPN."""
    sni = b"api.example.test"
    ext_sni = struct.pack(">HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    alpn = b"\x08http/1.1"
    ext_alpn = struct.pack(">HHH", 16, len(alpn) + 2, len(alpn)) + alpn
    exts = ext_sni + ext_alpn
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def main():
    # Seeds are rewritten; inputs the fuzzer found (found-*) stay.
    for f in CORPUS.glob("*/*"):
        if not f.name.startswith("found-"):
            f.unlink()
    requests = [
        "GET /a?imei=865432101234564 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
        "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
    ]
    for i, r in enumerate(requests):
        write("http1_request", f"seed{i}", b"\x10" + r.encode())
    responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\nuntil eof",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    ]
    for i, r in enumerate(responses):
        write("http1_response", f"seed{i}", bytes([i & 1]) + r.encode())
    for i, body in enumerate(["3\r\nabc\r\n0\r\n\r\n", "a;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
                              "ffffffffffffffffff\r\n", "0\r\n\r\n"]):
        write("http1_chunked", f"seed{i}", bytes([i * 9]) + body.encode())
    write("client_hello", "tls12", client_hello())
    write("client_hello", "http", b"GET / HTTP/1.1\r\n\r\n")
    write("client_hello", "mqtt", b"\x10\x16\x00\x04MQTT\x04\x02\x00\x3c")
    text = json.dumps({"event": "launch", "device": {"imei": "865432101234564"}}).encode()
    deflated = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = deflated.compress(text) + deflated.flush(zlib.Z_SYNC_FLUSH)
    write("websocket", "text", b"\x00" + ws_frame(1, text))
    write("websocket", "fragments", b"\x00" + ws_frame(1, text[:10], fin=False) + ws_frame(9, b"ping") +
          ws_frame(0, text[10:]))
    write("websocket", "deflate", b"\x01" + ws_frame(1, compressed[:-4], rsv1=True))
    write("websocket", "long", b"\x00" + ws_frame(2, bytes(300)))
    body = b"imei=865432101234564&tel=13812345678"
    write("body_decoders", "gzip", b"\x00" + gzip_fixed(body))
    write("body_decoders", "zlib", b"\x00" + zlib.compress(body))
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    write("body_decoders", "raw", b"\x01" + raw.compress(body) + raw.flush())
    write("body_decoders", "bomb", b"\x00" + gzip_fixed(bytes(4 << 20)))
    write("body_decoders", "undeclared", b"\x05" + gzip_fixed(body))
    for i, b in enumerate([
        json.dumps({"header": {"imei": "865432101234564", "mac": "02:1a:11:f0:5b:3c"}, "lat": 39.9091, "lng": 116.3982}),
        "imei=865432101234564&phone=%2B86%20138%201234%205678&apps=com.a.b,com.c.d",
        json.dumps({"contacts": [{"name": "张三", "phone": "13900001111"}, {"name": "李四", "phone": "13900002222"}]}),
        json.dumps({"sms": [{"address": "10086", "body": "【测试】您的验证码是 482913"}]}),
        "<xml><imei>865432101234564</imei><cid>1234</cid><lac>56</lac><mcc>460</mcc></xml>",
        json.dumps({"blob": base64.b64encode(gzip_fixed(b'{"imei":"865432101234564"}')).decode()}),
    ]):
        write("detector_engine", f"seed{i}", bytes([i]) + b.encode())
    # JSON event batches (choice 0: application/json) that the walk without a tree completes,
    # or hands over to the tree walk part-way through: the two must agree.
    event = {"name": "page_view", "dev": {"imei": "865432101234564", "mac": "02:1a:11:f0:5b:3c", "tel": "13912345678"}}
    for i, tail in enumerate([
        {"price": 116.40, "amount": 39.91, "who": "张三 13900001111"},
        {"wifi": ["3c:5a:b4:01:02:03", "3c:5a:b4:01:02:04"]},
        {"aps": [{"bssid": "3c:5a:b4:01:02:03"}, {"bssid": "aa:bb:cc:dd:ee:01"}]},
        {"loc": {"lat": 39.9091, "lng": 116.3982}},
        {"q": "imei%3D865432101234564", "to": "13912345678,13812345678"},
    ]):
        write("detector_engine", f"batch{i}", b"\x00" + json.dumps({"events": [event, event, tail, event]}).encode())
    for i, t in enumerate(['{"a":[1,2,{"b":"\\u5f20\\u4e09"}],"c":null}', "[" * 40 + "]" * 40, '"\\ud83d\\ude00"',
                           "-0.5e10", '{"a":"b",}']):
        write("json_structure", f"seed{i}", t)
    configs = [
        "listen: {address: 127.0.0.1, port: 8080, mode: explicit}\nclients: {allow: [127.0.0.1/32]}\n",
        "upstream: {verify: true, allow_ports: [443, 80], resolve: {a.test: 127.0.0.1}}\nlimits: {max_header_bytes: 64KiB}\n",
        "device: {imei: ['865432101234564'], location: {lat: 39.9, lng: 116.4, radius_m: 2000}}\n",
        "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
        "sdks: [{domain: umeng.com, sdk: Umeng, vendor: Alibaba, category: analytics}]\n",
    ]
    for i, c in enumerate(configs):
        write("config_yaml", f"seed{i}", c)
    har = {"log": {"version": "1.2", "entries": [
        {"startedDateTime": "2026-11-23T02:00:00.250Z", "time": 12.5,
         "request": {"method": "POST", "url": "https://sdk.umeng.com/app_logs?x=1", "httpVersion": "HTTP/1.1",
                     "headers": [{"name": "Content-Type", "value": "application/json"}],
                     "postData": {"mimeType": "application/json", "text": '{"imei":"865432101234564"}'}},
         "response": {"status": 200}},
        {"request": {"method": "GET", "url": "not a url"}}]}}
    write("har_reader", "seed0", json.dumps(har))
    write("har_reader", "seed1", '{"log":{}}')
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    write("pcapng_roundtrip", "shb", b"\x00" + shb)
    write("pcapng_roundtrip", "payload", b"\x07" + b"GET / HTTP/1.1\r\n\r\n" * 20)
    write("jsonl_roundtrip", "seed0", b"\x05" + "where\x00\x01\"\\\u5f20\xff".encode("utf-8", "surrogatepass"))
    write("jsonl_roundtrip", "seed1", b"\x03" + b"\xc3\x28\xa0\xa1bad utf-8")
    write("literal_set", "seed0", b"\x00865432101234564\x00abc\x00ab\x0013812345678\x00\x00x=865432101234564&abc")
    write("literal_set", "seed1", b"\x00aaaa\x00aaaaaaaa\x00\x00" + b"a" * 40)


if __name__ == "__main__":
    main()
