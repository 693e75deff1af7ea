/**
 * safetensors encoding and decoding (bytes in, bytes out; browser-safe).
 *
 * Layout: 8-byte little-endian header length N, then N bytes of UTF-8 JSON
 *   { "__metadata__": { string: string }, "<name>": { "dtype", "shape", "data_offsets": [begin, end] }, … }
 * then the raw little-endian tensor data; offsets are relative to the end of the header, and the
 * tensors tile the data area exactly (no gaps, no overlap, nothing left over). Python's
 * `safetensors` reads what `encodeSafetensors` writes.
 *
 * Decoding trusts nothing: a corrupt or truncated file gives one `UserError` line naming the file.
 */
import { UserError } from './errors.js';

/** The safetensors dtypes this package reads and writes. */
export type Dtype = 'F32' | 'F64' | 'U32' | 'U8';
/** A tensor's values, as the typed array of its dtype. */
export type TensorData = Float32Array | Float64Array | Uint32Array | Uint8Array;

/** A tensor for `encodeSafetensors`: its name, dtype, shape and little-endian data. */
export interface TensorToEncode {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: ArrayBufferView;
}

/** A tensor read by `decodeSafetensors` (data copied into a fresh typed array). */
export interface DecodedTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

/** A tensor's entry in a safetensors header. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Byte offsets [begin, end) inside the data area (after the header). */
  dataOffsets: [number, number];
}

/** A safetensors file's header: its tensors, its metadata and where the data starts. */
export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data area in the file (8 + header length). */
  dataStart: number;
}

export const DTYPE_SIZES: Record<Dtype, number> = { F32: 4, F64: 8, U32: 4, U8: 1 };

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function elementCount(shape: number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/** The bytes of `view` in little-endian order (a copy with bytes swapped on a big-endian host). */
function littleEndianBytes(view: ArrayBufferView, elementSize: number): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (HOST_IS_LITTLE_ENDIAN || elementSize === 1) return bytes;
  return swapBytes(bytes, elementSize);
}

function swapBytes(bytes: Uint8Array, elementSize: number): Uint8Array {
  const swapped = new Uint8Array(bytes.length);
  for (let start = 0; start < bytes.length; start += elementSize) {
    for (let k = 0; k < elementSize; k++) swapped[start + k] = bytes[start + elementSize - 1 - k];
  }
  return swapped;
}

const ARRAY_TYPES = { F32: Float32Array, F64: Float64Array, U32: Uint32Array, U8: Uint8Array };

/**
 * Encodes tensors and a string metadata map as a safetensors file. Tensors are laid out in the
 * order given. Throws (a programming error, not a user error) on inconsistent input.
 */
export function encodeSafetensors(tensors: TensorToEncode[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new TypeError(`metadata value for ${key} is not a string`);
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;

  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const tensor of tensors) {
    const { name, dtype, shape, data } = tensor;
    if (name === '' || name === '__metadata__') throw new Error(`invalid tensor name ${JSON.stringify(name)}`);
    if (Object.hasOwn(header, name)) throw new Error(`duplicate tensor name ${name}`);
    const size = DTYPE_SIZES[dtype];
    if (size === undefined) throw new Error(`tensor ${name}: unsupported dtype ${String(dtype)}`);
    if (!(data instanceof ARRAY_TYPES[dtype])) {
      throw new Error(`tensor ${name}: dtype ${dtype} needs a ${ARRAY_TYPES[dtype].name}, got ${data.constructor.name}`);
    }
    if (!shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw new Error(`tensor ${name}: bad shape [${shape.join(', ')}]`);
    }
    const byteLength = elementCount(shape) * size;
    if (byteLength !== data.byteLength) {
      throw new Error(`tensor ${name}: shape [${shape.join(', ')}] needs ${byteLength} bytes, data has ${data.byteLength}`);
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + byteLength] };
    chunks.push(littleEndianBytes(data, size));
    offset += byteLength;
  }

  // Pad the header with spaces so the data area starts 8-byte aligned (as the Python writer does).
  let headerText = JSON.stringify(header);
  const unpadded = new TextEncoder().encode(headerText).length;
  headerText += ' '.repeat((8 - (unpadded % 8)) % 8);
  const headerBytes = new TextEncoder().encode(headerText);

  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerBytes.length, true);
  view.setUint32(4, 0, true); // high 32 bits of the u64 length
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads and validates the header only (cheap: no tensor data is copied). Every tensor's offsets
 * are checked against the file size, its dtype and its shape; the tensors must tile the data area.
 */
export function readSafetensorsHeader(bytes: Uint8Array, source: string): SafetensorsHeader {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: not a valid safetensors checkpoint: ${problem}`);
  };
  if (bytes.length < 8) {
    fail(bytes.length === 0 ? 'the file is empty' : `truncated (${bytes.length} bytes, less than the 8-byte header length)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  const headerLength = high * 2 ** 32 + low;
  if (headerLength === 0) fail('the header length is 0');
  if (headerLength > MAX_HEADER_BYTES) fail(`the header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit`);
  if (8 + headerLength > bytes.length) {
    fail(`truncated: the header needs ${headerLength} bytes but the file has only ${bytes.length - 8} after the length`);
  }

  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    parsed = JSON.parse(text);
  } catch {
    fail('the header is not valid UTF-8 JSON');
  }
  if (!isPlainObject(parsed)) fail('the header is not a JSON object');
  const entries = parsed as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  const rawMetadata = entries.__metadata__;
  if (rawMetadata !== undefined) {
    if (!isPlainObject(rawMetadata)) fail('__metadata__ is not an object');
    for (const [key, value] of Object.entries(rawMetadata as Record<string, unknown>)) {
      if (typeof value !== 'string') fail(`__metadata__.${key} is not a string`);
      metadata[key] = value as string;
    }
  }

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(entries)) {
    if (name === '__metadata__') continue;
    if (!isPlainObject(entry)) fail(`tensor ${name}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) fail(`tensor ${name}: unexpected field ${extra[0]}`);
    if (typeof dtype !== 'string') fail(`tensor ${name}: dtype missing`);
    if (!Object.hasOwn(DTYPE_SIZES, dtype as string)) {
      fail(`tensor ${name}: dtype ${String(dtype)} is not one of ${Object.keys(DTYPE_SIZES).join(', ')}`);
    }
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      fail(`tensor ${name}: shape is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((value) => Number.isSafeInteger(value) && value >= 0)) {
      fail(`tensor ${name}: data_offsets is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      fail(`tensor ${name}: data_offsets [${begin}, ${end}] lie outside the ${dataLength} data bytes (truncated?)`);
    }
    const typedDtype = dtype as Dtype;
    const expectedBytes = elementCount(shape as number[]) * DTYPE_SIZES[typedDtype];
    if (end - begin !== expectedBytes) {
      fail(`tensor ${name}: shape [${(shape as number[]).join(', ')}] of ${typedDtype} needs ${expectedBytes} bytes, offsets give ${end - begin}`);
    }
    tensors.set(name, { dtype: typedDtype, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }

  // The tensors must tile the data area: sorted by offset, each starts where the previous ended.
  const ranges = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expectedBegin = 0;
  for (const [name, info] of ranges) {
    const [begin, end] = info.dataOffsets;
    if (begin !== expectedBegin) {
      fail(begin < expectedBegin ? `tensor ${name} overlaps another tensor` : `a gap of ${begin - expectedBegin} bytes before tensor ${name}`);
    }
    expectedBegin = end;
  }
  if (expectedBegin !== dataLength) {
    fail(`${dataLength - expectedBegin} bytes after the last tensor (the file is longer than its header says)`);
  }
  return { tensors, metadata, dataStart };
}

/** Decodes and validates a safetensors file; tensor data is copied into fresh typed arrays. */
export function decodeSafetensors(bytes: Uint8Array, source: string): { tensors: Map<string, DecodedTensor>; metadata: Record<string, string> } {
  const header = readSafetensorsHeader(bytes, source);
  const tensors = new Map<string, DecodedTensor>();
  for (const [name, info] of header.tensors) {
    const size = DTYPE_SIZES[info.dtype];
    const [begin, end] = info.dataOffsets;
    // slice() copies into a fresh, aligned buffer (offsets in the file need not be aligned).
    let raw: Uint8Array = bytes.slice(header.dataStart + begin, header.dataStart + end);
    if (!HOST_IS_LITTLE_ENDIAN && size > 1) raw = swapBytes(raw, size);
    const data: TensorData =
      info.dtype === 'F32'
        ? new Float32Array(raw.buffer, 0, raw.length / 4)
        : info.dtype === 'F64'
          ? new Float64Array(raw.buffer, 0, raw.length / 8)
          : info.dtype === 'U32'
            ? new Uint32Array(raw.buffer, 0, raw.length / 4)
            : raw;
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data });
  }
  return { tensors, metadata: header.metadata };
}
