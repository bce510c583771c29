/**
 * The one definition of token groups (SPEC §3 `--by`): the modality vocabulary, its codes, the
 * default groups, and which column a `--by` value names. Pure: the browser imports it too.
 */

/**
 * Every modality a trace may hold. Its first three entries are the codes the model and the trace
 * writer use (0 special, 1 text, 2 image = MODALITY_NAMES of src/data/sample.ts); importers add
 * `video` and `audio`.
 */
export const MODALITIES = ['special', 'text', 'image', 'video', 'audio'] as const;

/** The figure's groups when grouping by modality: text at the bottom, image on top (the seed). */
export const DEFAULT_MODALITY_GROUPS: readonly string[] = ['text', 'image'];

/** Group columns stored in the aggregates (SPEC §2): the token's modality, its sample's domain, its phase. */
export const AGG_GROUP_COLUMNS = ['modality', 'domain', 'phase'] as const;
export type AggGroupColumn = (typeof AGG_GROUP_COLUMNS)[number];

/** `--by` values with a meaning of their own; any other VARCHAR column of routing or samples is accepted too. */
export const NAMED_GROUPINGS = ['modality', 'domain', 'phase', 'source'] as const;

const COLUMN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A `--by` value: a column name (checked against the trace later), never an SQL expression. */
export function isGroupColumnName(by: string): boolean {
  return COLUMN.test(by);
}

/** Whether the aggregates hold this grouping (otherwise it is computed from the rows). */
export function isAggGroupColumn(by: string): by is AggGroupColumn {
  return (AGG_GROUP_COLUMNS as readonly string[]).includes(by);
}

/**
 * The groups to analyse when none are asked for: text and image (those present) for modality,
 * otherwise every value present, largest first (ties by name).
 */
export function defaultGroups(by: string, present: readonly { group: string; tokens: number }[]): string[] {
  if (by === 'modality') return DEFAULT_MODALITY_GROUPS.filter((g) => present.some((p) => p.group === g && p.tokens > 0));
  return [...present].filter((p) => p.tokens > 0).sort((a, b) => b.tokens - a.tokens || (a.group < b.group ? -1 : a.group > b.group ? 1 : 0)).map((p) => p.group);
}
