/**
 * One palette for every group the figures colour (modalities, domains, phases, any `--by` column),
 * keyed by the group's name so that `arxiv` has the same colour in every figure and in the
 * dashboard. Pure: the dashboard imports it.
 */

/** The seed's colours: Text orange/gold, Image teal; the other modalities get fixed ones too. */
export const MODALITY_COLORS: Readonly<Record<string, string>> = {
  text: '#E5A128',
  image: '#23998E',
  video: '#7E5BB5',
  audio: '#D1495B',
  special: '#8C8C8C',
};

/**
 * For other names (domains, phases, ...): ten strong hues distinct from each other and from the
 * seed's gold and teal, then ten lighter ones used only when the strong ones are taken.
 */
export const GROUP_PALETTE: readonly string[] = [
  '#4E79A7', '#E15759', '#59A14F', '#B07AA1', '#9C755F', '#FF9DA7', '#1F4E79', '#8B1E3F', '#6B8E23', '#79706E',
  '#A0CBE8', '#D37295', '#8CD17D', '#D4A6C8', '#D7B5A6', '#FABFD2', '#7B68EE', '#BCBD22', '#BAB0AC', '#C7C7FF',
];
const STRONG = 10;

/** FNV-1a of the name: a stable start in the palette for a group name. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The legend label of a group: modalities capitalised as in the seed (Text, Image), other names as they are. */
export function groupLabel(name: string, by = 'modality'): string {
  if (by !== 'modality') return name === '' ? '(none)' : name;
  return name.length ? name[0].toUpperCase() + name.slice(1) : '(none)';
}

/**
 * One distinct colour per group: `overrides`, then the fixed modality colours, then the palette
 * from the name's hash, stepping on when a colour is taken. Clashes are settled in name order,
 * so a group's colour depends on the set of groups, never on their order; a name that clashes
 * with none has its own colour in every figure. Beyond 20 groups colours repeat (the legend
 * still names every group).
 */
export function groupColors(groups: readonly string[], overrides: Readonly<Record<string, string>> = {}): string[] {
  const used = new Set<string>();
  const chosen = new Map<string, string>();
  for (const g of groups) {
    const c = overrides[g] ?? MODALITY_COLORS[g];
    if (c !== undefined) {
      chosen.set(g, c);
      used.add(c);
    }
  }
  const rest = [...new Set(groups.filter((g) => !chosen.has(g)))].sort();
  const tiers = [GROUP_PALETTE.slice(0, STRONG), GROUP_PALETTE.slice(STRONG)];
  for (const g of rest) {
    // the name picks its strong hue; when taken, the next free strong one, then the light ones
    const start = nameHash(g) % STRONG;
    let pick = GROUP_PALETTE[start];
    search: for (const tier of tiers) {
      for (let k = 0; k < tier.length; k++) {
        const c = tier[(start + k) % tier.length];
        if (!used.has(c)) {
          pick = c;
          break search;
        }
      }
    }
    used.add(pick);
    chosen.set(g, pick);
  }
  return groups.map((g) => chosen.get(g)!);
}
