/**
 * A tiny 5×8 bitmap font (7 rows above the baseline, 1 for descenders) for the labels drawn into animation frames ("step 1200", "t = 35").
 * Browser-safe and font-free: the frames look the same on every machine.
 */

export const glyphWidth = 5;
export const glyphHeight = 8;
/** Blank columns between two glyphs. */
export const glyphSpacing = 1;

// Each glyph: 7 rows of 5 columns, '#' = ink, and an optional 8th row below the baseline.
const glyphRows: Record<string, string> = {
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  ',': '..... ..... ..... ..... ..... .##.. .##.. .#...',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  '-': '..... ..... ..... ##### ..... ..... .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  c: '..... ..... .###. #.... #.... #...# .###.',
  e: '..... ..... .###. #...# ##### #.... .###.',
  f: '..##. .#..# .#... ###.. .#... .#... .#...',
  h: '#.... #.... #.##. ##..# #...# #...# #...#',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.',
  p: '..... ..... ####. #...# #...# #...# ####. #....',
  r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .#### #.... .###. ....# ####.',
  t: '.#... .#... ####. .#... .#... .#..# ..##.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
};

/** Each glyph as 8×5 booleans, row-major. */
const glyphs = new Map<string, Uint8Array>(
  Object.entries(glyphRows).map(([char, rows]) => {
    const bits = (rows.split(' ').length === glyphHeight - 1 ? `${rows} .....` : rows).replaceAll(' ', '');
    if (bits.length !== glyphWidth * glyphHeight) throw new Error(`bitmap glyph '${char}' is not ${glyphWidth}×${glyphHeight}`);
    return [char, Uint8Array.from(bits, (c) => (c === '#' ? 1 : 0))];
  }),
);

/** The characters this font can draw. */
export const fontCharacters: readonly string[] = [...glyphs.keys()];

/** Width in pixels of `text` drawn at `scale` (no trailing spacing). */
export function textWidth(text: string, scale = 1): number {
  if (text.length === 0) return 0;
  return (text.length * (glyphWidth + glyphSpacing) - glyphSpacing) * scale;
}

/**
 * Draws `text` into an indexed image (`pixels`, `imageWidth` wide) with its top-left corner at
 * (x, y), each font pixel a `scale`×`scale` block of colour index `ink`. Pixels outside the image
 * are clipped. Throws on a character the font lacks.
 */
export function drawText(pixels: Uint8Array, imageWidth: number, text: string, x: number, y: number, ink: number, scale = 1): void {
  const imageHeight = Math.floor(pixels.length / imageWidth);
  for (let k = 0; k < text.length; k++) {
    const glyph = glyphs.get(text[k]);
    if (!glyph) throw new Error(`the bitmap font has no glyph for '${text[k]}' (in "${text}")`);
    const left = x + k * (glyphWidth + glyphSpacing) * scale;
    for (let row = 0; row < glyphHeight; row++) {
      for (let col = 0; col < glyphWidth; col++) {
        if (!glyph[row * glyphWidth + col]) continue;
        for (let dy = 0; dy < scale; dy++) {
          const py = y + row * scale + dy;
          if (py < 0 || py >= imageHeight) continue;
          for (let dx = 0; dx < scale; dx++) {
            const px = left + col * scale + dx;
            if (px >= 0 && px < imageWidth) pixels[py * imageWidth + px] = ink;
          }
        }
      }
    }
  }
}
