;; The softmax top-k of router logits, a row at a time: routing.ts SoftmaxTopK.row in WebAssembly,
;; the exps four at a time (f32x4), bit for bit the same results. Compiled into softmax-topk-wasm.ts
;; by scripts/build-wasm-simd.mjs; softmax-topk.ts loads it.
;;
;; Every operation is the JS one in the same order (baseline SIMD has no fused multiply-add, and
;; V8 emits none for JS arithmetic): softmax-exps.ts's expF32 in float32, the sum in float64 in
;; four running sums by id mod 4, the division in float64, the demotion to float32. The K+1 best
;; are found another way than JS's insertion, with the same result: a lower bound tau from sixteen group maxima leaves a few
;; candidates, and each candidate's place is the number of candidates above it. A row JS would
;; not take on its fast path (a NaN or infinity, a sum that is not finite and positive, two of the K+1 best
;; equal, in score or in probability) is listed instead, for the caller's plain loop; so is a
;; row with more than 256 candidates (many equal values), whose ranking would cost more than JS.
;;
;; Memory (bytes), scratch below 65536:
;;   0 the packing swizzles (data)   16384 f32 ex[E] (E <= 2048)   36864 i32 topI[K+1]   40960 f64 topP[K+1] (K < 16)   44032 f64 sum
;;   45056 f32 group maxima[16]   49152 f32 candidates[E]   57344 i32 their ids[E]
;;   65536 on: the caller's rows and results
(module
  (memory (export "memory") 2)
  ;; at 0: for each 4-bit mask, the i8x16.swizzle that packs the lanes it selects to the front
  (data (i32.const 0) "\80\80\80\80\80\80\80\80\80\80\80\80\80\80\80\80\00\01\02\03\80\80\80\80\80\80\80\80\80\80\80\80\04\05\06\07\80\80\80\80\80\80\80\80\80\80\80\80\00\01\02\03\04\05\06\07\80\80\80\80\80\80\80\80\08\09\0a\0b\80\80\80\80\80\80\80\80\80\80\80\80\00\01\02\03\08\09\0a\0b\80\80\80\80\80\80\80\80\04\05\06\07\08\09\0a\0b\80\80\80\80\80\80\80\80\00\01\02\03\04\05\06\07\08\09\0a\0b\80\80\80\80\0c\0d\0e\0f\80\80\80\80\80\80\80\80\80\80\80\80\00\01\02\03\0c\0d\0e\0f\80\80\80\80\80\80\80\80\04\05\06\07\0c\0d\0e\0f\80\80\80\80\80\80\80\80\00\01\02\03\04\05\06\07\0c\0d\0e\0f\80\80\80\80\08\09\0a\0b\0c\0d\0e\0f\80\80\80\80\80\80\80\80\00\01\02\03\08\09\0a\0b\0c\0d\0e\0f\80\80\80\80\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\80\80\80\80\00\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f")

  ;; Rows t < T of float32 scores [T][E] at $scores (E a multiple of 4, K < E): experts (i32 [T][K]) and gates
  ;; (f32 [T][K], renormalised over the K when $norm) by descending gate. Returns how many rows it
  ;; left to the caller; their indices are at $fb (i32).
  (func (export "softmax_topk") (param $scores i32) (param $T i32) (param $E i32) (param $K i32) (param $norm i32)
    (param $experts i32) (param $gates i32) (param $fb i32) (result i32)
    (local $t i32) (local $row i32) (local $e i32) (local $j i32) (local $o i32) (local $nfb i32)
    (local $v f64) (local $max f64) (local $tau f64) (local $sum f64) (local $pj f64) (local $prev f64) (local $sumK f64)
    (local $nc i32) (local $c i32) (local $placed i32) (local $mask i32) (local $q i32)
    (local $x v128) (local $nan v128) (local $vs v128) (local $tauv v128) (local $v0 v128) (local $v1 v128) (local $v2 v128)
    (local $n v128) (local $r v128) (local $p v128) (local $k v128)
    (local.set $row (local.get $scores))
    (block $end
      (loop $rows
        (br_if $end (i32.ge_u (local.get $t) (local.get $T)))
        (block $ok
          (block $fallback
            ;; a NaN or an infinity anywhere (score - score is not 0): the caller's, whose JS fast path
            ;; gives up on one too and whose plain loop names it (the driver leaves that check to them). The max, and the
            ;; maxima of sixteen groups (expert id mod 16) kept in four vectors at 45056: four f goes to f mod 4
            (v128.store offset=45056 (i32.const 0) (v128.const f32x4 -inf -inf -inf -inf))
            (v128.store offset=45072 (i32.const 0) (v128.const f32x4 -inf -inf -inf -inf))
            (v128.store offset=45088 (i32.const 0) (v128.const f32x4 -inf -inf -inf -inf))
            (v128.store offset=45104 (i32.const 0) (v128.const f32x4 -inf -inf -inf -inf))
            (local.set $nan (v128.const i32x4 0 0 0 0))
            (local.set $e (i32.const 0))
            (block $maxed
              (loop $maxes
                (br_if $maxed (i32.ge_u (local.get $e) (local.get $E)))
                (local.set $p (v128.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2)))))
                (local.set $x (f32x4.sub (local.get $p) (local.get $p)))
                (local.set $nan (v128.or (local.get $nan) (f32x4.ne (local.get $x) (local.get $x))))
                (local.set $j (i32.and (local.get $e) (i32.const 12)))
                (v128.store offset=45056 (i32.shl (local.get $j) (i32.const 2))
                  (f32x4.max (v128.load offset=45056 (i32.shl (local.get $j) (i32.const 2))) (local.get $p)))
                (local.set $e (i32.add (local.get $e) (i32.const 4)))
                (br $maxes)))
            (br_if $fallback (v128.any_true (local.get $nan)))
            (local.set $v0 (v128.load offset=45056 (i32.const 0)))
            (local.set $v1 (v128.load offset=45072 (i32.const 0)))
            (local.set $v2 (v128.load offset=45088 (i32.const 0)))
            (local.set $x (v128.load offset=45104 (i32.const 0)))
            (local.set $x (f32x4.max (f32x4.max (local.get $v0) (local.get $v1)) (f32x4.max (local.get $v2) (local.get $x))))
            (local.set $x (f32x4.max (local.get $x) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
            (local.set $x (f32x4.max (local.get $x) (i8x16.shuffle 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 (local.get $x) (local.get $x))))
            (local.set $max (f64.promote_f32 (f32x4.extract_lane 0 (local.get $x))))
            ;; tau: the greatest group maximum with at least K+1 of the sixteen >= it. At least K+1
            ;; experts (those maxima) are >= tau, so the K+1 best are too: only values >= tau are
            ;; offered below (an empty group's -inf makes tau -inf: every value is offered)
            (local.set $tau (f64.const -inf))
            (local.set $x (v128.load offset=45104 (i32.const 0)))
            (local.set $j (i32.const 0))
            (loop $taus
              (local.set $vs (v128.load32_splat offset=45056 (i32.shl (local.get $j) (i32.const 2))))
              (local.set $c (i32.add
                (i32.add (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v0) (local.get $vs))))
                         (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v1) (local.get $vs)))))
                (i32.add (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $v2) (local.get $vs))))
                         (i32.popcnt (i32x4.bitmask (f32x4.ge (local.get $x) (local.get $vs)))))))
              (local.set $v (f64.promote_f32 (f32.load offset=45056 (i32.shl (local.get $j) (i32.const 2)))))
              (if (i32.and (i32.gt_u (local.get $c) (local.get $K)) (f64.gt (local.get $v) (local.get $tau)))
                (then (local.set $tau (local.get $v))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $taus (i32.lt_u (local.get $j) (i32.const 16))))
            ;; the candidates: every value >= tau with its id, in id order (f32 at 49152, i32 at 57344),
            ;; with no branch: each four is packed by the swizzle its mask selects (a table at 0) and
            ;; stored whole at the count, which grows by the kept ones (the rest is overwritten or past
            ;; the count). Many candidates (values repeated many times) are the caller's: the count
            ;; stops at 256, which keeps the stores inside the scratch
            (local.set $tauv (f32x4.splat (f32.demote_f64 (local.get $tau))))
            (local.set $nc (i32.const 0))
            (local.set $e (i32.const 0))
            (local.set $k (v128.const i32x4 0 1 2 3))
            (loop $collect
              (local.set $p (v128.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2)))))
              (local.set $mask (i32x4.bitmask (f32x4.ge (local.get $p) (local.get $tauv))))
              (local.set $x (v128.load offset=0 (i32.shl (local.get $mask) (i32.const 4))))
              (v128.store offset=49152 (i32.shl (local.get $nc) (i32.const 2)) (i8x16.swizzle (local.get $p) (local.get $x)))
              (v128.store offset=57344 (i32.shl (local.get $nc) (i32.const 2)) (i8x16.swizzle (local.get $k) (local.get $x)))
              (local.set $nc (i32.add (local.get $nc) (i32.popcnt (local.get $mask))))
              (local.set $k (i32x4.add (local.get $k) (i32x4.splat (i32.const 4))))
              (br_if $fallback (i32.gt_u (local.get $nc) (i32.const 256)))
              (local.set $e (i32.add (local.get $e) (i32.const 4)))
              (br_if $collect (i32.lt_u (local.get $e) (local.get $E))))
            (v128.store offset=49152 (i32.shl (local.get $nc) (i32.const 2)) (v128.const f32x4 -inf -inf -inf -inf))
            ;; each candidate's place = how many candidates are greater; places 0..K must each be taken
            ;; once (two equal values among the K+1 best: the caller's, as JS gives ties to the lower id)
            (local.set $placed (i32.const 0))
            (local.set $mask (i32.const 0))
            (local.set $j (i32.const 0))
            (loop $ranks
              (local.set $vs (v128.load32_splat offset=49152 (i32.shl (local.get $j) (i32.const 2))))
              (local.set $c (i32.const 0))
              (local.set $q (i32.const 0))
              (loop $greater
                (local.set $c (i32.add (local.get $c)
                  (i32.popcnt (i32x4.bitmask (f32x4.gt (v128.load offset=49152 (i32.shl (local.get $q) (i32.const 2))) (local.get $vs))))))
                (local.set $q (i32.add (local.get $q) (i32.const 4)))
                (br_if $greater (i32.lt_u (local.get $q) (local.get $nc))))
              (if (i32.le_u (local.get $c) (local.get $K))
                (then
                  (i32.store offset=36864 (i32.shl (local.get $c) (i32.const 2)) (i32.load offset=57344 (i32.shl (local.get $j) (i32.const 2))))
                  (local.set $placed (i32.add (local.get $placed) (i32.const 1)))
                  (local.set $mask (i32.or (local.get $mask) (i32.shl (i32.const 1) (local.get $c))))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $ranks (i32.lt_u (local.get $j) (local.get $nc))))
            (br_if $fallback (i32.ne (local.get $placed) (i32.add (local.get $K) (i32.const 1))))
            (br_if $fallback (i32.ne (i32.popcnt (local.get $mask)) (i32.add (local.get $K) (i32.const 1))))
            ;; ex[e] = expf(score - max) in float32, four lanes at a time (Cephes' expf, as softmax-exps.ts's
            ;; expF32: the same operations in the same order), stored as f32 at 16384; then summed in
            ;; float64 in four running sums by e mod 4, then (s0 + s2) + (s1 + s3). The sums are a loop
            ;; of their own: inside the exps' loop their chain of adds went through the stack (V8 spills
            ;; them there to keep the polynomial's constants in registers), 8% of a row's time
            (local.set $tauv (f32x4.splat (f32.demote_f64 (local.get $max))))
            (local.set $v0 (v128.const i64x2 0 0))
            (local.set $v1 (v128.const i64x2 0 0))
            (local.set $e (i32.const 0))
            (loop $exps
              (local.set $x (f32x4.sub (v128.load (i32.add (local.get $row) (i32.shl (local.get $e) (i32.const 2)))) (local.get $tauv)))
              (local.set $r (f32x4.pmin (f32x4.pmax (local.get $x) (f32x4.splat (f32.const -87.3))) (f32x4.splat (f32.const 88))))
              (local.set $k (f32x4.add (f32x4.mul (local.get $r) (f32x4.splat (f32.const 1.44269504088896341))) (f32x4.splat (f32.const 12582912))))
              (local.set $n (f32x4.sub (local.get $k) (f32x4.splat (f32.const 12582912))))
              (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693359375)))))
              (local.set $r (f32x4.sub (local.get $r) (f32x4.mul (local.get $n) (f32x4.splat (f32.const -2.12194440e-4)))))
              (local.set $p (f32x4.add (f32x4.mul (f32x4.splat (f32.const 1.9875691500e-4)) (local.get $r)) (f32x4.splat (f32.const 1.3981999507e-3))))
              (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 8.3334519073e-3))))
              (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 4.1665795894e-2))))
              (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 1.6666665459e-1))))
              (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (f32x4.splat (f32.const 5.0000001201e-1))))
              (local.set $p (f32x4.add (f32x4.add (f32x4.mul (f32x4.mul (local.get $p) (local.get $r)) (local.get $r)) (local.get $r)) (f32x4.splat (f32.const 1))))
              (local.set $p (f32x4.mul (local.get $p) (i32x4.shl (i32x4.add (local.get $k) (i32x4.splat (i32.const -1262485377))) (i32.const 23))))
              (local.set $p (v128.andnot (local.get $p) (f32x4.lt (local.get $x) (f32x4.splat (f32.const -87.3)))))
              (v128.store offset=16384 (i32.shl (local.get $e) (i32.const 2)) (local.get $p))
              (local.set $e (i32.add (local.get $e) (i32.const 4)))
              (br_if $exps (i32.lt_u (local.get $e) (local.get $E))))
            (local.set $e (i32.const 0))
            (loop $sums
              (local.set $p (v128.load offset=16384 (i32.shl (local.get $e) (i32.const 2))))
              (local.set $v0 (f64x2.add (local.get $v0) (f64x2.promote_low_f32x4 (local.get $p))))
              (local.set $v1 (f64x2.add (local.get $v1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $p) (local.get $p)))))
              (local.set $e (i32.add (local.get $e) (i32.const 4)))
              (br_if $sums (i32.lt_u (local.get $e) (local.get $E))))
            (local.set $v0 (f64x2.add (local.get $v0) (local.get $v1)))
            (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $v0)) (f64x2.extract_lane 1 (local.get $v0))))
            (f64.store offset=44032 (i32.const 0) (local.get $sum))
            (br_if $fallback (i32.eqz (f64.gt (local.get $sum) (f64.const 0))))
            (br_if $fallback (f64.eq (local.get $sum) (f64.const inf)))
            ;; probabilities of the K+1 best, which must stay strictly ordered
            (local.set $j (i32.const 0))
            (loop $probs
              (local.set $pj (f64.div
                (f64.promote_f32 (f32.load offset=16384 (i32.shl (i32.load offset=36864 (i32.shl (local.get $j) (i32.const 2))) (i32.const 2))))
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
