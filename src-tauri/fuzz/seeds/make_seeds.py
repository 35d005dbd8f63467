"""Writes the fuzz seeds that are not fixture files already: small GGUF headers (the layout of
a real llama/qwen2 model's header, with a few tensors), pictures in each format the avatar
reader takes, and recorded event streams. Run from this folder; the pictures and streams are
committed. The GGUF headers are not (no .gguf file is committed): `make_seeds.py gguf DIR`
writes them, as `.ci/fuzz` and the unit test `the_fuzz_seeds_are_headers_that_read` do."""
import io, os, struct, sys

def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b

def kv_str(k, v):
    return s(k) + struct.pack("<I", 8) + s(v)

def kv_u32(k, v):
    return s(k) + struct.pack("<I", 4) + struct.pack("<I", v)

def kv_arr_str(k, items):
    return s(k) + struct.pack("<I", 9) + struct.pack("<I", 8) + struct.pack("<Q", len(items)) + b"".join(s(i) for i in items)

def gguf(arch, tensors, version=3):
    kvs = [kv_str("general.architecture", arch), kv_str("general.name", f"tiny {arch}"),
           kv_u32(f"{arch}.context_length", 2048), kv_u32(f"{arch}.block_count", 2),
           kv_u32(f"{arch}.attention.head_count", 4), kv_u32(f"{arch}.attention.head_count_kv", 2),
           kv_u32(f"{arch}.embedding_length", 64), kv_u32("general.alignment", 32),
           kv_arr_str("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])]
    out = b"GGUF" + struct.pack("<I", version) + struct.pack("<QQ", len(tensors), len(kvs)) + b"".join(kvs)
    offset = 0
    for name, dims, ty, size in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ty, offset)
        offset += size
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + b"\0" * offset

GGUF_SEEDS = {
    "llama-f32.gguf": gguf("llama", [("token_embd.weight", [64, 4], 0, 64 * 4 * 4)]),
    "qwen2-q8_0.gguf": gguf("qwen2", [("blk.0.attn_q.weight", [64, 64], 8, 64 * 64 // 32 * 34),
                                      ("output_norm.weight", [64], 0, 256)]),
    "llama-v2-q4_1.gguf": gguf("llama", [("blk.0.ffn_up.weight", [64, 32], 3, 64 * 32 // 32 * 20)], version=2),
}
if len(sys.argv) == 3 and sys.argv[1] == "gguf":
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, data in GGUF_SEEDS.items():
        with open(os.path.join(sys.argv[2], name), "wb") as f:
            f.write(data)
    sys.exit(0)

from PIL import Image
img = Image.new("RGB", (48, 32))
for x in range(48):
    for y in range(32):
        img.putpixel((x, y), (x * 5, y * 7, 90))
for fmt, name in [("JPEG", "small.jpg"), ("WEBP", "small.webp"), ("GIF", "small.gif"), ("PNG", "small.png")]:
    buf = io.BytesIO()
    img.save(buf, fmt)
    with open(os.path.join("avatar", name), "wb") as f:
        f.write(buf.getvalue())

chunk = lambda text: 'data: {"choices":[{"delta":{"content":%s}}]}\n\n' % __import__("json").dumps(text)
streams = {
    "plain.txt": chunk("Hello") + chunk(", world") + 'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    "sse-fields.txt": ": keep-alive\nid: 1\nretry: 3000\nevent: message\n" + chunk("Hi") +
        'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1}}\n\ndata: [DONE]\n',
    "crlf.txt": (chunk("a") + "data: [DONE]\n").replace("\n", "\r\n"),
    "error.txt": 'data: {"error":{"message":"model not loaded"}}\n\n',
    "length.txt": chunk("cut") + 'data: {"choices":[{"delta":{},"finish_reason":"length"}]}\n\ndata: [DONE]\n',
}
for name, text in streams.items():
    # The target's first byte picks the chunk size the stream arrives in.
    with open(os.path.join("event_stream", name), "wb") as f:
        f.write(bytes([7]) + text.encode())
