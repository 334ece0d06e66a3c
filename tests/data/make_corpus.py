#!/usr/bin/env python3
"""Writes tests/data/corpus.jsonl: requests shaped like real SDK traffic, each labelled with the
personal-data categories it carries, plus negatives that look like personal data but are not.

Deterministic (fixed seed): run it again and the file does not change. The detector quality
test (tests/detectors/corpus_test.cpp) reads the output together with tests/data/profile.yaml.

Each line: {"id", "note", "method", "url", "headers": [[name, value]], "body_b64",
            "labels": [categories], "needs_profile": [categories only findable as known values]}
"""

import base64
import gzip
import hashlib
import json
import random
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
rng = random.Random(20261123)

# The test phone (also in profile.yaml).
P = {
    "imei": "865432101234564",
    "meid": "A1000049ABCDEF",
    "imsi": "460001234567890",
    "iccid": "8986001234567890120",
    "serial_number": "R58M12ABCDE",
    "android_id": "9774d56d682e549c",
    "advertising_id": "a1b2c3d4-0000-4a5b-9c8d-112233445566",
    "mac_address": "02:1a:11:f0:5b:3c",
    "phone_number": "13812345678",
    "email": "zhang.san@example.cn",
    "id_card": "11010519491231002X",
    "bank_card": "6222021234567890128",
}
LAT, LNG = 39.9087, 116.3975
CONTACTS = [("张三", "13900001111"), ("李四", "13900002222"), ("王五", "13900003333")]
SMS = "【测试】您的验证码是 482913"
APPS = ["com.tencent.mm", "com.taobao.taobao", "com.eg.android.alipaygphone", "com.ss.android.ugc.aweme", "com.sina.weibo"]
BSSIDS = ["3c:5a:b4:01:02:03", "3c:5a:b4:01:02:04", "60:3a:7c:11:22:33"]

# Keys SDKs use for each identifier (first one is the most explicit).
KEYS = {
    "imei": ["imei", "device_imei", "imei1"],
    "meid": ["meid"],
    "imsi": ["imsi", "subscriber_id"],
    "iccid": ["iccid", "sim_serial"],
    "serial_number": ["serial", "serial_no"],
    "android_id": ["android_id", "androidId"],
    "advertising_id": ["oaid", "gaid", "idfa"],
    "mac_address": ["mac", "wifi_mac"],
    "phone_number": ["phone", "mobile", "msisdn"],
    "email": ["email", "user_email"],
    "id_card": ["id_card", "idno"],
    "bank_card": ["bank_card", "card_no"],
}


def luhn_digit(prefix):
    total = 0
    for i, c in enumerate(reversed(prefix)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def other_value(category):
    """A valid value that is not the test phone's: only the pattern detectors can find it."""
    if category == "imei":
        body = "35" + "".join(rng.choice("0123456789") for _ in range(12))
        return body + luhn_digit(body)
    if category == "meid":
        return "A0" + "".join(rng.choice("0123456789ABCDEF") for _ in range(12))
    if category == "imsi":
        return "46001" + "".join(rng.choice("0123456789") for _ in range(10))
    if category == "iccid":
        body = "898601" + "".join(rng.choice("0123456789") for _ in range(12))
        return body + luhn_digit(body)
    if category == "serial_number":
        return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(11))
    if category == "android_id":
        return "".join(rng.choice("0123456789abcdef") for _ in range(16))
    if category == "advertising_id":
        h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if category == "mac_address":
        return ":".join(f"{rng.randrange(256):02x}" for _ in range(6)).replace("00:", "0a:", 1)
    if category == "phone_number":
        return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    if category == "email":
        return f"user{rng.randrange(1000, 9999)}@mail{rng.randrange(10, 99)}.com"
    if category == "id_card":
        w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        body = f"3301{rng.randrange(10, 99)}{rng.randrange(1960, 2004)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}{rng.randrange(100, 999)}"
        return body + "10X98765432"[sum(int(a) * b for a, b in zip(body, w)) % 11]
    if category == "bank_card":
        body = "622202" + "".join(rng.choice("0123456789") for _ in range(12))
        return body + luhn_digit(body)
    raise KeyError(category)


def envelope():
    """The fields every analytics request carries that are not personal data."""
    return {
        "sdk_version": rng.choice(["6.4.1", "9.5.2", "3.2.0.1"]),
        "os": "Android",
        "os_version": rng.choice(["12", "13", "14"]),
        "model": rng.choice(["SM-G9910", "Mi 11", "NOH-AN00", "V2183A"]),
        "ts": 1732300000000 + rng.randrange(10 ** 7),
        "session": "".join(rng.choice("0123456789abcdef") for _ in range(32)),
        "net": rng.choice(["wifi", "4g", "5g"]),
    }


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_field(number, value):
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    data = value if isinstance(value, bytes) else value.encode()
    return pb_varint((number << 3) | 2) + pb_varint(len(data)) + data


entries = []


def add(note, url, body=b"", headers=(), labels=(), needs_profile=(), method="POST"):
    if isinstance(body, str):
        body = body.encode()
    entries.append({
        "id": len(entries) + 1, "note": note, "method": method, "url": url,
        "headers": [list(h) for h in headers], "body_b64": base64.b64encode(body).decode(),
        "labels": sorted(set(labels)), "needs_profile": sorted(set(needs_profile)),
    })


HOSTS = ["https://alog.umeng.com/app_logs", "https://sdk.e.qq.com/launch", "https://api.tuia.cn/log",
         "https://data.mistat.xiaomi.com/report", "https://stat.sdk.example.cn/v2/collect"]

JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


def json_body(extra):
    d = envelope()
    d.update(extra)
    return json.dumps(d, ensure_ascii=False)


# --- scalar identifiers in every container and encoding ------------------------------------------
SCALAR_ENCODINGS = ["json", "nested_json", "form", "query", "header", "gzip_json", "zlib_json", "multipart",
                    "protobuf", "xml", "base64_json", "gzip_base64_json", "url_in_json",
                    "md5", "sha1", "sha256", "sha256_b64", "b64_value"]

for category in KEYS:
    for enc in SCALAR_ENCODINGS:
        for use_profile in ([True, False] if enc not in ("md5", "sha1", "sha256", "sha256_b64", "b64_value") else [True]):
            value = P[category] if use_profile else other_value(category)
            key = rng.choice(KEYS[category])
            url = rng.choice(HOSTS)
            needs = [category] if enc in ("md5", "sha1", "sha256", "sha256_b64", "b64_value") else []
            note = f"{category} {'profile' if use_profile else 'other'} {enc}"
            if enc == "json":
                add(note, url, json_body({key: value}), [JSON], [category], needs)
            elif enc == "nested_json":
                add(note, url, json_body({"header": {"device": {key: value}}}), [JSON], [category], needs)
            elif enc == "form":
                from urllib.parse import urlencode
                add(note, url, urlencode({"appkey": "5f8a9b", key: value, "v": "2"}), [FORM], [category], needs)
            elif enc == "query":
                from urllib.parse import quote
                add(note, f"{url}?ak=5f8a9b&{key}={quote(value)}&t=1732300000", b"", [], [category], needs, method="GET")
            elif enc == "header":
                add(note, url, json_body({}), [JSON, ("X-" + key.replace("_", "-").title(), value)], [category], needs)
            elif enc == "gzip_json":
                add(note, url, gzip.compress(json_body({key: value}).encode()), [JSON, ("Content-Encoding", "gzip")], [category], needs)
            elif enc == "zlib_json":
                add(note, url, zlib.compress(json_body({key: value}).encode()), [("Content-Type", "application/octet-stream")], [category], needs)
            elif enc == "multipart":
                b = "----sdkBoundary7MA4YWxk"
                part = json_body({key: value})
                body = (f"--{b}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{part}\r\n"
                        f"--{b}\r\nContent-Disposition: form-data; name=\"log\"; filename=\"crash.txt\"\r\n\r\nstack trace here\r\n--{b}--\r\n")
                add(note, url, body, [("Content-Type", f"multipart/form-data; boundary={b}")], [category], needs)
            elif enc == "protobuf":
                inner = pb_field(1, key) + pb_field(2, value)
                body = pb_field(1, 3) + pb_field(2, "6.4.1") + pb_field(5, inner) + pb_field(6, 1732300000)
                add(note, url, body, [("Content-Type", "application/x-protobuf")], [category], needs)
            elif enc == "xml":
                body = f'<?xml version="1.0"?><req><app>demo</app><{key}>{value}</{key}><ts>1732300000</ts></req>'
                add(note, url, body, [("Content-Type", "text/xml")], [category], needs)
            elif enc == "base64_json":
                inner = json.dumps({key: value, "lang": "zh_CN"})
                add(note, url, json_body({"data": base64.b64encode(inner.encode()).decode()}), [JSON], [category], needs)
            elif enc == "gzip_base64_json":
                inner = gzip.compress(json.dumps({key: value, "lang": "zh_CN"}).encode())
                add(note, url, json_body({"payload": base64.b64encode(inner).decode()}), [JSON], [category], needs)
            elif enc == "url_in_json":
                from urllib.parse import urlencode
                add(note, url, json_body({"ext": urlencode({key: value, "ch": "huawei"})}), [JSON], [category], needs)
            elif enc in ("md5", "sha1", "sha256"):
                h = getattr(hashlib, enc)(value.encode()).hexdigest()
                h = h.upper() if rng.random() < 0.5 else h
                add(note, url, json_body({"did": h}), [JSON], [category], needs)
            elif enc == "sha256_b64":
                h = base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()
                add(note, url, json_body({"uid": h}), [JSON], [category], needs)
            elif enc == "b64_value":
                add(note, url, json_body({"k": base64.b64encode(value.encode()).decode()}), [JSON], [category], needs)

# --- format variants of profile values ---------------------------------------------------------
for v in ["86-543210-123456-4", "86 543210 123456 4"]:
    add(f"imei variant {v}", HOSTS[0], json_body({"dev": v}), [JSON], ["imei"], ["imei"])
for v in ["+8613812345678", "008613812345678", "+86 138 1234 5678", "138-1234-5678", "86-13812345678"]:
    add(f"phone variant {v}", HOSTS[1], json_body({"u": v}), [JSON], ["phone_number"], ["phone_number"])
for v in ["02:1A:11:F0:5B:3C", "02-1a-11-f0-5b-3c", "021a11f05b3c", "021A11F05B3C"]:
    add(f"mac variant {v}", HOSTS[2], json_body({"hw": v}), [JSON], ["mac_address"], ["mac_address"])

# --- location --------------------------------------------------------------------------------
for digits in [2, 3, 4, 6]:
    # Written with exactly `digits` decimals (Python's round() would drop trailing zeros).
    lat, lng = f"{LAT + 0.0004:.{digits}f}", f"{LNG - 0.0003:.{digits}f}"
    body = json_body({"lat": "@LAT@", "lng": "@LNG@"}).replace('"@LAT@"', lat).replace('"@LNG@"', lng)
    add(f"profile location {digits} decimals", HOSTS[3], body, [JSON], ["location"], ["location"] if digits == 2 else [])
    add(f"profile location reversed string {digits}", HOSTS[4], json_body({"loc": f"{lng},{lat}"}), [JSON], ["location"], ["location"] if digits < 3 else [])
add("profile location scaled 1e6", HOSTS[0], json_body({"la": int(LAT * 1e6), "lo": int(LNG * 1e6)}), [JSON], ["location"], ["location"])
add("profile location scaled 1e5", HOSTS[1], json_body({"y": int(LAT * 1e5), "x": int(LNG * 1e5)}), [JSON], ["location"], ["location"])
add("profile location in query", HOSTS[2] + f"?latitude={LAT}&longitude={LNG}", b"", [], ["location"], [], method="GET")
for city, (la, lo) in {"shanghai": (31.230416, 121.473701), "shenzhen": (22.543096, 114.057865),
                       "chengdu": (30.572815, 104.066801), "xian": (34.341568, 108.939774)}.items():
    add(f"other location {city} object", HOSTS[3], json_body({"gps": {"latitude": la, "longitude": lo, "acc": 15}}), [JSON], ["location"])
    add(f"other location {city} string", HOSTS[4], f"loc={la},{lo}&src=gps", [FORM], ["location"])
    add(f"other location {city} gzip", HOSTS[0], gzip.compress(json_body({"lat": la, "lon": lo}).encode()), [JSON, ("Content-Encoding", "gzip")], ["location"])

# --- cell and Wi-Fi location ---------------------------------------------------------------------
for i in range(8):
    cell = {"mcc": 460, "mnc": rng.choice([0, 1, 11]), "lac": rng.randrange(1000, 60000), "cid": rng.randrange(10 ** 5, 10 ** 9)}
    if i % 2:
        cell = {"cells": [cell, dict(cell, cid=cell["cid"] + 1)]}
    add(f"cell tower {i}", rng.choice(HOSTS), json_body(cell), [JSON], ["cell_location"])
for i in range(8):
    aps = [{"bssid": ":".join(f"{rng.randrange(256):02x}" for _ in range(6)), "ssid": f"AP-{rng.randrange(100)}", "rssi": -rng.randrange(30, 90)} for _ in range(rng.randrange(2, 6))]
    if i % 3 == 0:
        body = json_body({"wifi": ",".join(a["bssid"] for a in aps)})
    else:
        body = json_body({"wifi_list": aps})
    add(f"wifi scan {i}", rng.choice(HOSTS), body, [JSON], ["wifi_location"])
add("profile bssids", HOSTS[0], json_body({"aps": BSSIDS[:2]}), [JSON], ["wifi_location"])

# --- SMS -------------------------------------------------------------------------------------
for i in range(6):
    msgs = [{"address": "1069" + str(rng.randrange(10 ** 6, 10 ** 7)), "body": rng.choice(["您的快递已到", "本月话费 58 元", "会议改到下午三点"]),
             "date": 1732300000000} for _ in range(rng.randrange(1, 4))]
    add(f"sms inbox {i}", rng.choice(HOSTS), json_body({"sms": msgs}), [JSON], ["sms"])
for text in ["【银行】您的验证码是 573920，5分钟内有效", "Your verification code is 819273. Do not share it.",
             "验证码：662301，您正在登录", "[Shop] Your login code is 902817", "OTP 448120 for your transaction"]:
    add(f"verification sms '{text[:12]}'", rng.choice(HOSTS), json_body({"notification_text": text}), [JSON], ["sms"])
add("profile sms json", HOSTS[1], json_body({"content": SMS}), [JSON], ["sms"])
add("profile sms json-escaped in text", HOSTS[2], "msg=" + json.dumps(SMS)[1:-1], [("Content-Type", "text/plain")], ["sms"])
add("profile sms excerpt: tag and code", HOSTS[3], json_body({"tag": "【测试】", "n": "482913"}), [JSON], ["sms"], ["sms"])
add("profile sms url-encoded", HOSTS[4], "s=" + __import__("urllib.parse").parse.quote(SMS), [FORM], ["sms"])

# --- contacts --------------------------------------------------------------------------------
for i in range(6):
    book = [{"name": rng.choice(["A", "B", "陈", "刘", "Li"]) + str(j), "phone": "1" + rng.choice("3589") + "".join(rng.choice("0123456789") for _ in range(9))} for j in range(rng.randrange(3, 8))]
    add(f"address book {i}", rng.choice(HOSTS), json_body({"contacts": book}), [JSON], ["contacts", "phone_number"])
add("vcard upload", HOSTS[0], "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Li\r\nTEL;TYPE=CELL:13900005555\r\nEND:VCARD\r\n", [("Content-Type", "text/vcard")], ["contacts", "phone_number"])
add("two profile contacts by name", HOSTS[1], json_body({"recent": ["张三", "李四"]}), [JSON], ["contacts"], ["contacts"])
add("two profile contacts url-encoded", HOSTS[2], "a=%E5%BC%A0%E4%B8%89&b=%E7%8E%8B%E4%BA%94", [FORM], ["contacts"], ["contacts"])
add("profile contacts by phone", HOSTS[3], json_body({"p": ["13900001111", "13900003333"]}), [JSON], ["contacts", "phone_number"], ["contacts"])

# --- installed apps ----------------------------------------------------------------------------
others = ["com.baidu.searchbox", "com.jingdong.app.mall", "com.netease.cloudmusic", "com.xunmeng.pinduoduo",
          "com.autonavi.minimap", "com.sankuai.meituan", "tv.danmaku.bili", "com.zhihu.android"]
for i in range(6):
    pkgs = rng.sample(others, rng.randrange(5, 8))
    if i % 2:
        body = json_body({"applist": ",".join(pkgs)})
    else:
        body = json_body({"apps": [{"pkg": p, "ver": "1.0"} for p in pkgs]})
    add(f"app list {i}", rng.choice(HOSTS), body, [JSON], ["installed_apps"])
add("profile apps, two", HOSTS[4], json_body({"x": APPS[:2]}), [JSON], ["installed_apps"], ["installed_apps"])

# --- several categories at once, as a real device-info report --------------------------------------
for i in range(10):
    report = {"imei": P["imei"], "imsi": P["imsi"], "mac": P["mac_address"], "android_id": P["android_id"],
              "oaid": P["advertising_id"], "lat": LAT, "lng": LNG}
    enc = i % 3
    body = json_body({"device": report})
    headers = [JSON]
    if enc == 1:
        body = gzip.compress(body.encode())
        headers.append(("Content-Encoding", "gzip"))
    elif enc == 2:
        body = json_body({"d": base64.b64encode(gzip.compress(json.dumps(report).encode())).decode()})
    add(f"device report {i}", rng.choice(HOSTS), body, headers,
        ["imei", "imsi", "mac_address", "android_id", "advertising_id", "location"])

# --- negatives: look like personal data, are not -------------------------------------------------
def neg(note, body, headers=(JSON,), url=None, method="POST"):
    add("negative: " + note, url or rng.choice(HOSTS), body, headers, [], method=method)


for i in range(15):
    neg("order and trade numbers", json_body({"order_id": f"2024{rng.randrange(10 ** 11, 10 ** 12)}", "trade_no": str(rng.randrange(10 ** 17, 10 ** 18))}))
    neg("timestamps", json_body({"start": 1732300000000 + rng.randrange(10 ** 6), "end_ts": str(1732300000 + rng.randrange(10 ** 5))}))
    neg("build and version numbers", json_body({"build": str(rng.randrange(10 ** 10, 2 * 10 ** 10)), "version_code": rng.randrange(10 ** 8), "ver": f"{rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(100)}.{rng.randrange(10 ** 4)}"}))
    neg("random hex ids", json_body({"trace_id": "".join(rng.choice("0123456789abcdef") for _ in range(16)), "span": "".join(rng.choice("0123456789abcdef") for _ in range(32))}))
    neg("uuids without context", json_body({"request_id": other_value("advertising_id"), "event_uuid": other_value("advertising_id")}))
    neg("coordinates of nothing", json_body({"x": round(rng.uniform(0, 400), 2), "y": round(rng.uniform(0, 800), 2), "lat": 0.0, "lng": 0.0, "scale": 2.75}))
    neg("11-digit numbers that are not phones", json_body({"uid": str(rng.choice([10, 11, 12]) * 10 ** 9 + rng.randrange(10 ** 9)), "qq": str(rng.randrange(10 ** 9, 10 ** 10)), "order_no": "1" + rng.choice("3589") + str(rng.randrange(10 ** 8, 10 ** 9))}))
    neg("prices and amounts", f"amount={rng.randrange(100, 10 ** 6) / 100}&price=13800.{rng.randrange(10, 99)}&count={rng.randrange(100)}", (FORM,))
    neg("15 digits failing Luhn", json_body({"seq": (lambda b: b + str((int(luhn_digit(b)) + 1) % 10))("86" + "".join(rng.choice("0123456789") for _ in range(12)))}))
    neg("session tokens", json_body({"token": base64.b64encode(bytes(rng.randrange(256) for _ in range(24))).decode()}))
    neg("plain text logs", f"level=info&msg=app+started+in+{rng.randrange(100, 3000)}ms&thread=main", (FORM,))
    neg("host lists", json_body({"dns": ["www.example.com", "api.example.com", "cdn.example.com", "img.example.com", "log.example.com"]}))
    neg("a lone code without sender", json_body({"code": str(rng.randrange(10 ** 5, 10 ** 6)), "status": "ok"}))
    neg("hashes of non-profile values", json_body({"sig": hashlib.md5(str(rng.random()).encode()).hexdigest(), "sha": hashlib.sha256(str(rng.random()).encode()).hexdigest()}))
    neg("query with ids", b"", (), url=rng.choice(HOSTS) + f"?appid={rng.randrange(10 ** 6)}&ts={1732300000 + i}&nonce={rng.randrange(10 ** 8)}", method="GET")

with open(HERE / "corpus.jsonl", "w") as f:
    for e in entries:
        f.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
positives = sum(1 for e in entries if e["labels"])
print(f"{len(entries)} requests: {positives} with personal data, {len(entries) - positives} negatives")
