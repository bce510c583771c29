/** The efmoe kernels: one op per file, llm.c style (forward/backward pairs over flat Float32Arrays). */
export { matmulForward, matmulBackward, setMatmulBackend, matmulBackends } from './matmul.js';
export { jsBackend, type MatmulBackend } from './gemm-js.js';
export { wasmBackend } from './gemm-wasm.js';
export { wasmKernel, type WasmKernel } from './wasm.js';
export { rmsnormForward, rmsnormBackward, setRmsnormWasm } from './rmsnorm.js';
export { ropeTable, ropeForward, ropeBackward, type RopeTable } from './rope.js';
export { attentionForward, attentionBackward, attentionMask, setAttentionWasm } from './attention.js';
export { swigluForward, swigluBackward, setSwigluWasm } from './swiglu.js';
export { softmaxForward, softmaxBackward, crossEntropyForward, crossEntropySoftmaxBackward } from './softmax.js';
export { routerForward, routerBackward } from './router.js';
