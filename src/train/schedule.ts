/**
 * Learning rate at optimizer step `step` (0-based): linear warmup over `warmup` steps to `lr`, then
 * cosine decay to `minLr` at the last step (`steps - 1`).
 */
export function learningRate(step: number, o: { lr: number; min_lr: number; warmup: number; steps: number }): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  const span = o.steps - 1 - o.warmup;
  if (span <= 0) return o.lr;
  const progress = Math.min(1, (step - o.warmup) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + Math.cos(Math.PI * progress));
}
