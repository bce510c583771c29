/** Modality names, colours and stacking order of the figure (pure; the dashboard imports it). */

/** The seed's colours: Text orange/gold, Image teal; other modalities get their own. */
export const MODALITY_COLORS: Readonly<Record<string, string>> = {
  text: '#E5A128',
  image: '#23998E',
  video: '#7E5BB5',
  audio: '#D1495B',
  special: '#8C8C8C',
};

/** For modalities without a fixed colour, in order; none close to the fixed ones. */
const EXTRA_COLORS = ['#4E79A7', '#9C755F', '#FF9DA7', '#59A14F', '#B07AA1', '#EDC948', '#76B7B2', '#E15759'];

export function modalityLabel(m: string): string {
  return m.length ? m[0].toUpperCase() + m.slice(1) : m;
}

/** One distinct colour per modality, in the given order (`overrides` first). */
export function modalityColors(modalities: readonly string[], overrides: Readonly<Record<string, string>> = {}): string[] {
  const used = new Set<string>();
  let next = 0;
  return modalities.map((m) => {
    let c = overrides[m] ?? MODALITY_COLORS[m];
    while (c === undefined || used.has(c)) c = EXTRA_COLORS[next++ % EXTRA_COLORS.length] ?? '#444444';
    used.add(c);
    return c;
  });
}
