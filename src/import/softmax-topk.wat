;; The softmax top-k of router logits, a row at a time: routing.ts SoftmaxTopK.row in WebAssembly,
;; the exps two at a time (f64x2), bit for bit the same results. Compiled into softmax-topk-wasm.ts
;; by scripts/build-wasm-simd.mjs; softmax-topk.ts loads it and fills the constants.
;;
;; Every operation is the JS one in the same order, in float64 (baseline SIMD has no fused
;; multiply-add, and V8 emits none for JS arithmetic): the selection with strict > (ties to the
;; lower id), exp-neg.ts's expNonPositive, the sum in expert order, the division, the demotion to
;; float32. A row JS would not take on its fast path (a NaN, an exp argument below -700, a sum that
;; is not finite and positive, two of the K+1 best probabilities equal) is listed instead, for the
;; caller's plain loop.
;;
;; Memory (bytes), all filled by the caller:
;;   0    f64 INV, SHIFT, HI, LO, 1/6, 1/24, -700        (exp-neg.ts's constants)
;;   64   f64 WHOLE[1024]: 2^-m
;;   8256 f64 FRAC[256]: 2^(j/256)
;;   16384 f64 ex[E] (E <= 2048)   32768 f64 topV[K+1]   36864 i32 topI[K+1]   40960 f64 topP[K+1] (K < 256)
;;   65536 on: the caller's rows and results
(module
  (memory (export "memory") 2)

  ;; Rows t < T of float32 scores [T][E] at $scores (E even, K < E): experts (i32 [T][K]) and gates
  ;; (f32 [T][K], renormalised over the K when $norm) by descending gate. Returns how many rows it
  ;; left to the caller; their indices are at $fb (i32).
  (func (export "softmax_topk") (param $scores i32) (param $T i32) (param $E i32) (param $K i32) (param $norm i32)
    (param $experts i32) (param $gates i32) (param $fb i32) (result i32)
    (local $t i32) (local $row i32) (local $e i32) (local $j i32) (local $o i32) (local $nfb i32)
    (local $v f64) (local $max f64) (local $thr f64) (local $sum f64) (local $pj f64) (local $prev f64) (local $sumK f64)
    (local $x v128) (local $nan v128) (local $vs v128) (local $es v128) (local $ps v128)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $i0 v128) (local $i1 v128) (local $i2 v128)
    (local $lt0 v128) (local $lt1 v128) (local $lt2 v128) (local $eq0 v128) (local $eq1 v128) (local $eq2 v128) (local $n v128) (local $r v128) (local $p v128) (local $k v128) (local $k0 i32) (local $k1 i32)
    (local.set $row (local.get $scores))
    (block $end
      (loop $rows
        (br_if $end (i32.ge_u (local.get $t) (local.get $T)))
        (block $ok
          (block $fallback
            ;; a NaN anywhere: the caller's (JS's fast path gives up on one too); the max, in four lanes
            (local.set $x (v128.load (local.get $row)))
            (local.set $nan (f32x4.ne (local.get $x) (local.get $x)))
            (local.set $e (i32.const 4))
            (block $maxed
              (loop $maxes
                (br_if $maxed (i32.ge_u (local.get $e) (local.get $E)))
                (local.set $p (v128.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2)))))
                (local.set $nan (v128.or (local.get $nan) (f32x4.ne (local.get $p) (local.get $p))))
                (local.set $x (f32x4.max (local.get $x) (local.get $p)))
                (local.set $e (i32.add (local.get $e) (i32.const 4)))
                (br $maxes)))
            (br_if $fallback (v128.any_true (local.get $nan)))
            (local.set $x (f32x4.max (local.get $x) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
            (local.set $x (f32x4.max (local.get $x) (i8x16.shuffle 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 (local.get $x) (local.get $x))))
            (local.set $max (f64.promote_f32 (f32x4.extract_lane 0 (local.get $x))))
            ;; the K+1 best, descending, ties to the lower id, in twelve lanes (v0 v1 v2 / i0 i1 i2; empty
            ;; lanes NaN): the first K+1 values go in, then only values above the K+1-th. A value goes to
            ;; lane p = how many held values are >= it (it comes after equal ones, which have lower ids);
            ;; lanes from p on move down one. No branch on where it goes.
            (local.set $v0 (f32x4.splat (f32.const nan)))
            (local.set $v1 (local.get $v0))
            (local.set $v2 (local.get $v0))
            (local.set $e (i32.const 0))
            (local.set $thr (f64.const -inf))
            (block $selected
              (loop $select
                (br_if $selected (i32.ge_u (local.get $e) (local.get $E)))
                (if (i32.and (i32.gt_u (local.get $e) (local.get $K)) (i32.eqz (i32.and (local.get $e) (i32.const 3))))
                  (then
                    ;; a four with no value above the K+1-th is skipped whole
                    (if (i32.eqz (v128.any_true (f32x4.gt
                          (v128.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2))))
                          (f32x4.splat (f32.demote_f64 (local.get $thr))))))
                      (then
                        (local.set $e (i32.add (local.get $e) (i32.const 4)))
                        (br $select)))))
                (local.set $v (f64.promote_f32 (f32.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2))))))
                (if (i32.or (i32.le_u (local.get $e) (local.get $K)) (f64.gt (local.get $v) (local.get $thr)))
                  (then
                    (local.set $vs (f32x4.splat (f32.demote_f64 (local.get $v))))
                    (local.set $ps (i32x4.splat (i32.add (i32.add
                      (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v0) (local.get $vs))))
                      (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v1) (local.get $vs)))))
                      (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v2) (local.get $vs)))))))
                    (local.set $es (i32x4.splat (local.get $e)))
                    ;; lane j < p keeps its value, lane p takes the new one, lane j > p takes lane j - 1's
                    (local.set $lt0 (i32x4.lt_s (v128.const i32x4 0 1 2 3) (local.get $ps)))
                    (local.set $lt1 (i32x4.lt_s (v128.const i32x4 4 5 6 7) (local.get $ps)))
                    (local.set $lt2 (i32x4.lt_s (v128.const i32x4 8 9 10 11) (local.get $ps)))
                    (local.set $eq0 (i32x4.eq (v128.const i32x4 0 1 2 3) (local.get $ps)))
                    (local.set $eq1 (i32x4.eq (v128.const i32x4 4 5 6 7) (local.get $ps)))
                    (local.set $eq2 (i32x4.eq (v128.const i32x4 8 9 10 11) (local.get $ps)))
                    (local.set $v2 (v128.bitselect (local.get $v2) (v128.bitselect (local.get $vs)
                      (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 (local.get $v1) (local.get $v2)) (local.get $eq2)) (local.get $lt2)))
                    (local.set $v1 (v128.bitselect (local.get $v1) (v128.bitselect (local.get $vs)
                      (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 (local.get $v0) (local.get $v1)) (local.get $eq1)) (local.get $lt1)))
                    (local.set $v0 (v128.bitselect (local.get $v0) (v128.bitselect (local.get $vs)
                      (i8x16.shuffle 0 1 2 3 0 1 2 3 4 5 6 7 8 9 10 11 (local.get $v0) (local.get $v0)) (local.get $eq0)) (local.get $lt0)))
                    (local.set $i2 (v128.bitselect (local.get $i2) (v128.bitselect (local.get $es)
                      (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 (local.get $i1) (local.get $i2)) (local.get $eq2)) (local.get $lt2)))
                    (local.set $i1 (v128.bitselect (local.get $i1) (v128.bitselect (local.get $es)
                      (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 (local.get $i0) (local.get $i1)) (local.get $eq1)) (local.get $lt1)))
                    (local.set $i0 (v128.bitselect (local.get $i0) (v128.bitselect (local.get $es)
                      (i8x16.shuffle 0 1 2 3 0 1 2 3 4 5 6 7 8 9 10 11 (local.get $i0) (local.get $i0)) (local.get $eq0)) (local.get $lt0)))
                    (v128.store offset=32768 (i32.const 0) (local.get $v0))
                    (v128.store offset=32784 (i32.const 0) (local.get $v1))
                    (v128.store offset=32800 (i32.const 0) (local.get $v2))
                    (if (i32.ge_u (local.get $e) (local.get $K))
                      (then (local.set $thr (f64.promote_f32 (f32.load offset=32768 (i32.shl (local.get $K) (i32.const 2)))))))))
                (local.set $e (i32.add (local.get $e) (i32.const 1)))
                (br $select)))
            (v128.store offset=36864 (i32.const 0) (local.get $i0))
            (v128.store offset=36880 (i32.const 0) (local.get $i1))
            (v128.store offset=36896 (i32.const 0) (local.get $i2))
            ;; ex[e] = expNonPositive(score - max), two lanes at a time
            (local.set $e (i32.const 0))
            (loop $exps
              (local.set $x (f64x2.sub
                (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2)))))
                (f64x2.splat (local.get $max))))
              (br_if $fallback (i32.eqz (i64x2.all_true (f64x2.ge (local.get $x) (v128.load64_splat offset=48 (i32.const 0))))))
              ;; n = x * INV + SHIFT - SHIFT; r = x - n * HI - n * LO; k = n | 0
              (local.set $n (f64x2.sub
                (f64x2.add (f64x2.mul (local.get $x) (v128.load64_splat offset=0 (i32.const 0))) (v128.load64_splat offset=8 (i32.const 0)))
                (v128.load64_splat offset=8 (i32.const 0))))
              (local.set $r (f64x2.sub
                (f64x2.sub (local.get $x) (f64x2.mul (local.get $n) (v128.load64_splat offset=16 (i32.const 0))))
                (f64x2.mul (local.get $n) (v128.load64_splat offset=24 (i32.const 0)))))
              (local.set $k (i32x4.trunc_sat_f64x2_s_zero (local.get $n)))
              ;; p = 1 + r * (1 + r * (0.5 + r * (1/6 + r * (1/24))))
              (local.set $p (f64x2.add (v128.load64_splat offset=32 (i32.const 0)) (f64x2.mul (local.get $r) (v128.load64_splat offset=40 (i32.const 0)))))
              (local.set $p (f64x2.add (f64x2.splat (f64.const 0.5)) (f64x2.mul (local.get $r) (local.get $p))))
              (local.set $p (f64x2.add (f64x2.splat (f64.const 1)) (f64x2.mul (local.get $r) (local.get $p))))
              (local.set $p (f64x2.add (f64x2.splat (f64.const 1)) (f64x2.mul (local.get $r) (local.get $p))))
              ;; WHOLE[-(k >> 8)] * (FRAC[k & 255] * p)
              (local.set $k0 (i32x4.extract_lane 0 (local.get $k)))
              (local.set $k1 (i32x4.extract_lane 1 (local.get $k)))
              (v128.store offset=16384 (i32.shl (local.get $e) (i32.const 3))
                (f64x2.mul
                  (f64x2.replace_lane 1
                    (f64x2.splat (f64.load offset=64 (i32.shl (i32.sub (i32.const 0) (i32.shr_s (local.get $k0) (i32.const 8))) (i32.const 3))))
                    (f64.load offset=64 (i32.shl (i32.sub (i32.const 0) (i32.shr_s (local.get $k1) (i32.const 8))) (i32.const 3))))
                  (f64x2.mul
                    (f64x2.replace_lane 1
                      (f64x2.splat (f64.load offset=8256 (i32.shl (i32.and (local.get $k0) (i32.const 255)) (i32.const 3))))
                      (f64.load offset=8256 (i32.shl (i32.and (local.get $k1) (i32.const 255)) (i32.const 3))))
                    (local.get $p))))
              (local.set $e (i32.add (local.get $e) (i32.const 2)))
              (br_if $exps (i32.lt_u (local.get $e) (local.get $E))))
            ;; their sum in expert order
            (local.set $sum (f64.const 0))
            (local.set $e (i32.const 0))
            (loop $sums
              (local.set $sum (f64.add (local.get $sum) (f64.load offset=16384 (i32.shl (local.get $e) (i32.const 3)))))
              (local.set $e (i32.add (local.get $e) (i32.const 1)))
              (br_if $sums (i32.lt_u (local.get $e) (local.get $E))))
            (br_if $fallback (i32.eqz (f64.gt (local.get $sum) (f64.const 0))))
            (br_if $fallback (f64.eq (local.get $sum) (f64.const inf)))
            ;; probabilities of the K+1 best, which must stay strictly ordered
            (local.set $j (i32.const 0))
            (loop $probs
              (local.set $pj (f64.div
                (f64.load offset=16384 (i32.shl (i32.load offset=36864 (i32.shl (local.get $j) (i32.const 2))) (i32.const 3)))
                (local.get $sum)))
              (if (local.get $j) (then (br_if $fallback (i32.eqz (f64.lt (local.get $pj) (local.get $prev))))))
              (f64.store offset=40960 (i32.shl (local.get $j) (i32.const 3)) (local.get $pj))
              (local.set $prev (local.get $pj))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $probs (i32.le_u (local.get $j) (local.get $K))))
            ;; routing.ts writeChoices
            (local.set $sumK (f64.const 0))
            (local.set $j (i32.const 0))
            (loop $sumk
              (local.set $sumK (f64.add (local.get $sumK) (f64.load offset=40960 (i32.shl (local.get $j) (i32.const 3)))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $sumk (i32.lt_u (local.get $j) (local.get $K))))
            (local.set $o (i32.shl (i32.mul (local.get $t) (local.get $K)) (i32.const 2)))
            (local.set $j (i32.const 0))
            (loop $write
              (local.set $pj (f64.load offset=40960 (i32.shl (local.get $j) (i32.const 3))))
              (if (i32.and (i32.ne (local.get $norm) (i32.const 0)) (f64.gt (local.get $sumK) (f64.const 0)))
                (then (local.set $pj (f64.div (local.get $pj) (local.get $sumK)))))
              (i32.store (i32.add (local.get $experts) (local.get $o)) (i32.load offset=36864 (i32.shl (local.get $j) (i32.const 2))))
              (f32.store (i32.add (local.get $gates) (local.get $o)) (f32.demote_f64 (local.get $pj)))
              (local.set $o (i32.add (local.get $o) (i32.const 4)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $write (i32.lt_u (local.get $j) (local.get $K))))
            (br $ok))
          ;; left to the caller
          (i32.store (i32.add (local.get $fb) (i32.shl (local.get $nfb) (i32.const 2))) (local.get $t))
          (local.set $nfb (i32.add (local.get $nfb) (i32.const 1))))
        (local.set $row (i32.add (local.get $row) (i32.shl (local.get $E) (i32.const 2))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $rows)))
    (local.get $nfb)))
