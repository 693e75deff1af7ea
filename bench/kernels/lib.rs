//! C-ABI exports of the crate's matrix kernels for bench/kernels.mjs: the same source file
//! (crate/src/linalg.rs, with the lanes of crate/src/simd.rs), compiled alone to wasm32 with simd128, without wasm-bindgen.

#[path = "../../crate/src/simd.rs"]
#[allow(dead_code)]
mod simd;

#[path = "../../crate/src/linalg.rs"]
#[allow(dead_code)]
mod linalg;

#[path = "../../crate/src/conv.rs"]
#[allow(dead_code)]
mod conv;

use conv::{AxisMap, ConvPlan, ConvShape};
use linalg::{Epilogue, Layout};

/// A zeroed f32 buffer of n values that lives until the instance is dropped; returns its address.
#[no_mangle]
pub extern "C" fn alloc_f32(n: usize) -> *mut f32 {
    Box::leak(vec![0.0f32; n].into_boxed_slice()).as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn peak(iterations: u32, x: f32) -> f32 {
    linalg::peak_multiply_add(iterations, x)
}

#[no_mangle]
pub extern "C" fn peak_flops_per_iteration() -> u32 {
    linalg::PEAK_FLOPS_PER_ITERATION as u32
}

/// `reps` calls of linalg::gemm on buffers made by alloc_f32. a_t / b_t: operand stored transposed;
/// epilogue: 0 set, 1 add, 2 bias, 3 bias + ReLU, 4 ReLU mask (bias and mask are `aux`).
///
/// # Safety
/// The pointers must come from alloc_f32 with at least the sizes the shapes need.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn gemm(m: usize, k: usize, n: usize, a: *const f32, a_t: u32, b: *const f32, b_t: u32, c: *mut f32, epilogue: u32, aux: *const f32, reps: u32) {
    let a = std::slice::from_raw_parts(a, m * k);
    let b = std::slice::from_raw_parts(b, k * n);
    let c = std::slice::from_raw_parts_mut(c, m * n);
    let aux_len = if epilogue == 4 { m * n } else { n };
    let aux = std::slice::from_raw_parts(aux, aux_len);
    let layout = |t: u32| if t != 0 { Layout::Transposed } else { Layout::Normal };
    let epilogue = match epilogue {
        0 => Epilogue::Set,
        1 => Epilogue::Add,
        2 => Epilogue::Bias { bias: aux, relu: false },
        3 => Epilogue::Bias { bias: aux, relu: true },
        _ => Epilogue::Mask { mask: aux },
    };
    for _ in 0..reps {
        linalg::gemm(m, k, n, a, layout(a_t), b, layout(b_t), c, epilogue);
    }
}

/// `reps` calls of the depthwise circular convolution (backward if `backward` != 0).
///
/// # Safety
/// As for `gemm`: h and m hold rows·L·C values, taps K·C, bias rows·C.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn conv(rows: usize, l: usize, c: usize, kernel: usize, h: *const f32, taps: *const f32, bias: *mut f32, m: *mut f32, dh: *mut f32, dtaps: *mut f32, backward: u32, reps: u32) {
    let h = std::slice::from_raw_parts(h, rows * l * c);
    let taps = std::slice::from_raw_parts(taps, kernel * c);
    let bias = std::slice::from_raw_parts_mut(bias, rows * c);
    let m = std::slice::from_raw_parts_mut(m, rows * l * c);
    let dh = std::slice::from_raw_parts_mut(dh, rows * l * c);
    let dtaps = std::slice::from_raw_parts_mut(dtaps, kernel * c);
    let mut scratch = Vec::new();
    for _ in 0..reps {
        if backward == 0 {
            linalg::circular_depthwise(rows, l, c, kernel, h, taps, bias, m, &mut scratch);
        } else {
            linalg::circular_depthwise_backward(rows, l, c, kernel, h, taps, m, dtaps, bias, dh, &mut scratch);
        }
    }
}

/// A plan of the U-Net's convolutions (network/unet.rs, zero padding; 3 taps along every axis
/// longer than 1) on an h×w grid, kept until the instance is dropped. kind 0: same grid; 1:
/// downsample to ceil(h/2)×ceil(w/2) (stride 2); 2: upsample from ceil(h/2)×ceil(w/2) (nearest,
/// then the convolution); 3: the 1×1 skip projection.
#[no_mangle]
pub extern "C" fn conv_plan(h: usize, w: usize, kind: u32) -> *const ConvPlan {
    let axis = |len: usize| {
        let half = len.div_ceil(2);
        let (in_len, out_len, stride) = match kind {
            1 => (len, half, 2),
            2 => (half, len, 1),
            _ => (len, len, 1),
        };
        AxisMap { in_len, out_len, kernel: if len > 1 { 3 } else { 1 }, stride, dilation: 1, upsample: kind == 2, circular: false }
    };
    let plan = if kind == 3 { ConvPlan::pointwise(h * w) } else { ConvPlan::new(axis(h), axis(w)) };
    Box::leak(Box::new(plan))
}

/// `reps` U-Net convolutions (conv::conv_forward; conv::conv_backward with dW and dx if
/// `backward` != 0) of `rows` rows through `plan`, C_in -> C_out channels, relu on the input if
/// `relu_input` != 0 (the blocks' convolutions; not the down/upsampling and skip ones).
///
/// # Safety
/// `plan` from conv_plan; buffers from alloc_f32 with the sizes the shapes need.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn conv_grid(
    plan: *const ConvPlan,
    rows: usize,
    c_in: usize,
    c_out: usize,
    relu_input: u32,
    x: *const f32,
    weight: *const f32,
    bias: *const f32,
    y: *mut f32,
    dx: *mut f32,
    dweight: *mut f32,
    dbias: *mut f32,
    backward: u32,
    reps: u32,
) {
    let plan = &*plan;
    let shape = ConvShape { rows, c_in, c_out, relu_input: relu_input != 0 };
    let x = std::slice::from_raw_parts(x, rows * plan.in_positions * c_in);
    let weight = std::slice::from_raw_parts(weight, plan.taps * c_in * c_out);
    let bias = std::slice::from_raw_parts(bias, c_out);
    let y = std::slice::from_raw_parts_mut(y, rows * plan.out_positions * c_out);
    let dx = std::slice::from_raw_parts_mut(dx, rows * plan.in_positions * c_in);
    let dweight = std::slice::from_raw_parts_mut(dweight, plan.taps * c_in * c_out);
    let dbias = std::slice::from_raw_parts_mut(dbias, c_out);
    let mut cols = Vec::new();
    const BUDGET: usize = 1 << 20; // as network/unet.rs
    for _ in 0..reps {
        if backward == 0 {
            conv::conv_forward(plan, shape, x, weight, Some(bias), y, &mut cols, BUDGET);
        } else {
            conv::conv_backward(plan, shape, x, weight, y, dweight, Some(&mut *dbias), Some(&mut *dx), &mut cols, BUDGET);
        }
    }
}
