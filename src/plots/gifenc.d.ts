// gifenc 1.0.3 ships no types; bitgrid.ts declares the part it uses where it imports it.
declare module 'gifenc';
