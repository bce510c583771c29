export { matmulForward, matmulBackward, setMatmulBackend, matmulBackends } from './matmul.js';
export { jsBackend, type MatmulBackend } from './gemm-js.js';
export { wasmBackend } from './gemm-wasm.js';
export { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
export { ropeTable, ropeForward, ropeBackward, type RopeTable } from './rope.js';
export { attentionForward, attentionBackward, attentionMask } from './attention.js';
export { swigluForward, swigluBackward } from './swiglu.js';
export { softmaxForward, softmaxBackward, crossEntropyForward, crossEntropySoftmaxBackward } from './softmax.js';
export { routerForward, routerBackward } from './router.js';
