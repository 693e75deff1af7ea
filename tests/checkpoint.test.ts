// safetensors encode/decode (src/checkpoint.ts): round trips, the exact byte layout, and every way a
// file can be corrupt or truncated giving one UserError line that names the file.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, readSafetensorsHeader, type TensorToEncode } from '../src/checkpoint.js';
import { UserError } from '../src/errors.js';

const sampleTensors = (): TensorToEncode[] => [
  { name: 'net.w1', dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -2, 0, 3.25, 1e-30, -0]) },
  { name: 'step', dtype: 'U32', shape: [1], data: new Uint32Array([4294967295]) },
  { name: 'mask', dtype: 'U8', shape: [3], data: new Uint8Array([0, 1, 2]) }, // odd length: misaligns the next tensor
  { name: 'sums', dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) },
  { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
];

/** Builds a file by hand from a header object and a data area (to make deliberately bad files). */
function rawFile(header: unknown, data: Uint8Array, declaredLength?: number): Uint8Array {
  const headerBytes = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setUint32(0, declaredLength ?? headerBytes.length, true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

function decodeError(bytes: Uint8Array): UserError {
  try {
    decodeSafetensors(bytes, 'runs/x/model.safetensors');
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    const message = (error as UserError).message;
    expect(message.startsWith('runs/x/model.safetensors: ')).toBe(true);
    expect(message).not.toContain('\n');
    return error as UserError;
  }
  throw new Error('expected decoding to fail');
}

describe('safetensors encode/decode', () => {
  it('round-trips every dtype, shape and value bit for bit, with metadata', () => {
    const metadata = { format: 'bernoulli-diffusion/1', config: '{"T": 2000}', ünïcode: 'ok ✓' };
    const bytes = encodeSafetensors(sampleTensors(), metadata);
    const decoded = decodeSafetensors(bytes, 'mem');
    expect(decoded.metadata).toEqual(metadata);
    expect([...decoded.tensors.keys()]).toEqual(['net.w1', 'step', 'mask', 'sums', 'empty']);
    for (const original of sampleTensors()) {
      const tensor = decoded.tensors.get(original.name)!;
      expect(tensor.dtype).toBe(original.dtype);
      expect(tensor.shape).toEqual(original.shape);
      expect(tensor.data.constructor).toBe(original.data.constructor);
      expect(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)).toEqual(
        Buffer.from(original.data.buffer, original.data.byteOffset, original.data.byteLength),
      );
    }
    expect(Object.is(decoded.tensors.get('net.w1')!.data[5], -0)).toBe(true);
  });

  it('writes the documented layout: u64 LE header length, 8-aligned JSON header, contiguous LE data', () => {
    const bytes = encodeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
        { name: 'b', dtype: 'U8', shape: [2], data: new Uint8Array([7, 9]) },
      ],
      { k: 'v' },
    );
    const view = new DataView(bytes.buffer);
    const headerLength = view.getUint32(0, true);
    expect(view.getUint32(4, true)).toBe(0);
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header).toEqual({
      __metadata__: { k: 'v' },
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'U8', shape: [2], data_offsets: [4, 6] },
    });
    expect([...bytes.subarray(8 + headerLength)]).toEqual([0x00, 0x00, 0x80, 0x3f, 7, 9]); // 1.0f little-endian
    expect(bytes.length).toBe(8 + headerLength + 6);
  });

  it('encodes a view into a larger buffer using only the viewed bytes', () => {
    const backing = new Float32Array([9, 1, 2, 9]);
    const bytes = encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [2], data: backing.subarray(1, 3) }], {});
    expect([...(decodeSafetensors(bytes, 'mem').tensors.get('x')!.data as Float32Array)]).toEqual([1, 2]);
  });

  it('refuses inconsistent input when encoding', () => {
    const f = new Float32Array(6);
    expect(() => encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [2, 2], data: f }], {})).toThrow(/needs 16 bytes/);
    expect(() => encodeSafetensors([{ name: 'x', dtype: 'F64', shape: [3], data: f }], {})).toThrow(/Float64Array/);
    expect(() =>
      encodeSafetensors(
        [
          { name: 'x', dtype: 'F32', shape: [6], data: f },
          { name: 'x', dtype: 'F32', shape: [6], data: f },
        ],
        {},
      ),
    ).toThrow(/duplicate/);
    expect(() => encodeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [6], data: f }], {})).toThrow(/invalid tensor name/);
  });

  it('reads the header alone without copying data', () => {
    const bytes = encodeSafetensors(sampleTensors(), { a: 'b' });
    const header = readSafetensorsHeader(bytes, 'mem');
    expect(header.metadata).toEqual({ a: 'b' });
    expect(header.tensors.get('sums')).toEqual({ dtype: 'F64', shape: [2], dataOffsets: [31, 47] });
  });
});

describe('safetensors validation: one line naming the file', () => {
  const good = encodeSafetensors(sampleTensors(), { format: 'x' });

  it('every truncation of a valid file is rejected', () => {
    for (let length = 0; length < good.length; length++) {
      decodeError(good.subarray(0, length));
    }
  });

  it('names the specific problem', () => {
    expect(decodeError(new Uint8Array(0)).message).toMatch(/empty/);
    expect(decodeError(good.subarray(0, 5)).message).toMatch(/truncated/);
    expect(decodeError(good.subarray(0, 40)).message).toMatch(/truncated: the header needs/);
    expect(decodeError(good.subarray(0, good.length - 1)).message).toMatch(/outside the \d+ data bytes/);
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(4, 1, true);
    expect(decodeError(huge).message).toMatch(/over the 100000000-byte limit/);
    expect(decodeError(rawFile('', new Uint8Array(0))).message).toMatch(/header length is 0/);
    expect(decodeError(rawFile('{"a": ', new Uint8Array(0))).message).toMatch(/not valid UTF-8 JSON/);
    expect(decodeError(rawFile('[1, 2]', new Uint8Array(0))).message).toMatch(/not a JSON object/);
    const bad = new Uint8Array([0xff, 0xfe]);
    const withBadUtf8 = new Uint8Array(8 + bad.length);
    new DataView(withBadUtf8.buffer).setUint32(0, bad.length, true);
    withBadUtf8.set(bad, 8);
    expect(decodeError(withBadUtf8).message).toMatch(/UTF-8/);
  });

  it('checks metadata, dtypes, shapes and offsets', () => {
    const four = new Uint8Array(4);
    const cases: [unknown, Uint8Array, RegExp][] = [
      [{ __metadata__: { a: 1 } }, new Uint8Array(0), /__metadata__\.a is not a string/],
      [{ __metadata__: [] }, new Uint8Array(0), /__metadata__ is not an object/],
      [{ x: 3 }, four, /tensor x: entry is not an object/],
      [{ x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, four, /dtype F16 is not one of F32, F64, U32, U8/],
      [{ x: { shape: [1], data_offsets: [0, 4] } }, four, /dtype missing/],
      [{ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, four, /shape is not a list/],
      [{ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, four, /shape is not a list/],
      [{ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, four, /data_offsets is not a pair/],
      [{ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, four, /outside/],
      [{ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four, /needs 8 bytes, offsets give 4/],
      [{ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: 1 } }, four, /unexpected field extra/],
      [{ x: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } }, four, /gap of 2 bytes before tensor x/],
      [{ x: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, four, /2 bytes after the last tensor/],
      [{ x: { dtype: 'U8', shape: [3], data_offsets: [0, 3] }, y: { dtype: 'U8', shape: [3], data_offsets: [1, 4] } }, four, /overlaps/],
    ];
    for (const [header, data, pattern] of cases) {
      expect(decodeError(rawFile(header, data)).message).toMatch(pattern);
    }
  });

  it('accepts a file with no tensors and no metadata', () => {
    const decoded = decodeSafetensors(rawFile({}, new Uint8Array(0)), 'mem');
    expect(decoded.tensors.size).toBe(0);
    expect(decoded.metadata).toEqual({});
  });
});

// Python's safetensors must load what we write unchanged, and we must load what it writes.
const python = spawnSync('python3', ['-c', 'import safetensors'], { encoding: 'utf8' });
const pythonReason =
  python.error !== undefined ? `python3 not runnable (${python.error.message})` : python.status !== 0 ? 'python3 has no safetensors module' : '';
if (pythonReason !== '') console.log(`skipping the Python safetensors interoperability test: ${pythonReason}`);

describe.skipIf(pythonReason !== '')('Python safetensors interoperability', () => {
  it('Python reads our file and writes one we read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bd-safetensors-'));
    const ours = join(dir, 'ours.safetensors');
    writeFileSync(ours, encodeSafetensors(sampleTensors(), { format: 'bernoulli-diffusion/1', config: '{"T":5}' }));
    const theirs = join(dir, 'theirs.safetensors');
    const script = `
import json, sys, struct, safetensors
data = open(sys.argv[1], 'rb').read()
out = {}
for name, t in safetensors.deserialize(data):
    out[name] = {'dtype': t['dtype'], 'shape': list(t['shape']), 'hex': bytes(t['data']).hex()}
n = struct.unpack('<Q', data[:8])[0]
meta = json.loads(data[8:8 + n]).get('__metadata__', {})  # deserialize() above validated the file
keep = []
def spec(long_dtype, short_dtype, shape, raw):
    if hasattr(safetensors, 'TensorSpec'):  # safetensors >= 0.8 takes raw buffers
        import ctypes
        buffer = ctypes.create_string_buffer(raw, len(raw))
        keep.append(buffer)
        return safetensors.TensorSpec(dtype=long_dtype, shape=shape, data_ptr=ctypes.addressof(buffer), data_len=len(raw))
    return {'dtype': short_dtype, 'shape': shape, 'data': raw}
tensors = {'v': spec('float32', 'F32', [3], struct.pack('<3f', 0.5, -1.0, 2.0)),
           'n': spec('uint32', 'U32', [1], struct.pack('<I', 7))}
open(sys.argv[2], 'wb').write(safetensors.serialize(tensors, metadata={'from': 'python'}))
print(json.dumps({'tensors': out, 'metadata': meta}))
`;
    const result = JSON.parse(execFileSync('python3', ['-c', script, ours, theirs], { encoding: 'utf8' }));
    expect(result.metadata).toEqual({ format: 'bernoulli-diffusion/1', config: '{"T":5}' });
    for (const original of sampleTensors()) {
      const read = result.tensors[original.name];
      expect(read.dtype).toBe(original.dtype);
      expect(read.shape).toEqual(original.shape);
      expect(read.hex).toBe(Buffer.from(original.data.buffer, original.data.byteOffset, original.data.byteLength).toString('hex'));
    }
    const decoded = decodeSafetensors(new Uint8Array(readFileSync(theirs)), theirs);
    expect(decoded.metadata).toEqual({ from: 'python' });
    expect([...(decoded.tensors.get('v')!.data as Float32Array)]).toEqual([0.5, -1, 2]);
    expect([...(decoded.tensors.get('n')!.data as Uint32Array)]).toEqual([7]);
  });
});
