/**
 * The U-Net's shape rules as crate/src/network/unet.rs applies them, for the TypeScript parts that
 * need them before (or without) a core model: the memory guard and the export metadata.
 */

/**
 * The number of levels when configured as 0 (unet.rs `default_levels`): 1 + the halvings
 * (rounding up) until the longest side is at most 4.
 */
export function unetDefaultLevels(dataShape: readonly number[]): number {
  let side = Math.max(...dataShape);
  let levels = 1;
  while (side > 4) {
    side = Math.ceil(side / 2);
    levels += 1;
  }
  return levels;
}

/** Channels of each level (unet.rs `level_widths`): C_j = min(C·2^j, M), or C at every level when M = 0. */
export function unetLevelWidths(channels: number, maxChannels: number, levels: number): number[] {
  return Array.from({ length: levels }, (_, j) => (maxChannels === 0 ? channels : Math.min(channels * 2 ** j, Math.max(maxChannels, channels))));
}
