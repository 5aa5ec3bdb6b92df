"""Conv2D on the fast backend: the rule picks an algorithm (rules.py), this file runs it.

The maths is in minicnn/nn/conv.py. Here it is computed as matrix products over
blocks of output pixels (the im2col path, kernels/im2col.py), or by the Winograd,
direct, shifted-window and tap-class drivers beside this file:

    cols = im2col(x)                         # (M, K), M = N*OH*OW, K = KH*KW*C
    y    = cols @ W.reshape(K, F) + b        # (M, F) == (N, OH, OW, F)
    dW   = cols.T @ dy,   db = sum of dy's rows
    dx   = col2im(dy @ W.reshape(K, F).T)    # or, stride 1: im2col(dy) @ W_flip

How the work is cut, whatever the path:

* Rows: blocks of R = max(BLOCK_BYTES / (K * itemsize), MIN_BLOCK_ROWS) rows of
  im2col (the layer's ``max_chunk_bytes`` caps R). Each core takes blocks from a
  shared counter and runs im2col_rows -> a one-thread matmul on its own buffer
  (parallel.py), so a block stays in that core's L2 cache instead of one large
  product streaming an (M, K) matrix through memory. Nothing of size M*K exists.
  (docs/performance.md, "im2col block size", has the measurements behind this.)
* dW: summed per group of consecutive blocks (REDUCE_GROUPS fixed groups, in
  block order, whichever thread runs the group), then the groups in order: the
  result does not depend on thread timing, so training is bit-for-bit reproducible.
  db, on every path: the column sums of dy in float64 over fixed row blocks
  (kernels/sums.py), reproducible the same way.
* dx by col2im: blocks of whole images, so two threads never add to the same pixel.
"""
import numpy as np

from ..backend import register
from ..nn.conv import Conv2D
from .conv_direct import direct_forward, direct_weight_grad
from .conv_shifts import shifted_forward, shifted_weight_grad
from .conv_taps import taps_forward, taps_weight_grad
from .conv_winograd import winograd_forward, winograd_weight_grad
from .kernels.im2col import col2im_rows, im2col_rows
from .kernels.relu import relu_backward
from .kernels.sums import column_sums, unpooled_column_sums
from .parallel import num_threads, parallel_blocks
from .rules import conv_path, conv_shape, flipped_padding

BLOCK_BYTES = 1 << 20    # target size of one block of im2col rows (fits a core's L2 cache)
MIN_BLOCK_ROWS = 512     # ... but at least this many rows, so each product is tall
REDUCE_GROUPS = 4        # dW, db: sums over this many fixed groups of blocks, added in order


def block_rows(layer, M, K, itemsize):
    """Rows per block of im2col (R, K): BLOCK_BYTES worth, at least MIN_BLOCK_ROWS,
    never more than the layer's max_chunk_bytes (a hard cap: 1 gives one-row blocks) or M."""
    row = K * itemsize
    R = min(max(BLOCK_BYTES // row, MIN_BLOCK_ROWS), layer.max_chunk_bytes // row, M)
    return int(max(1, R))


def rows_for(layer, itemsize):
    return lambda M, K: block_rows(layer, M, K, itemsize)


@register(Conv2D, "forward")
def conv2d_forward(layer, x, training=False, relu=False):
    """y (N, OH, OW, F), or max(y, 0) when relu (applied per block, while in cache)."""
    layer.x = x
    shape = conv_shape(layer, x.shape, x.dtype)
    W, b = layer.params["W"], layer.params["b"] if layer.use_bias else None
    path = conv_path(layer, "forward", shape)
    if path == "winograd":
        return winograd_forward(x, W, b, shape.pad_top, shape.pad_left, shape.OH, shape.OW, relu)
    if path == "direct":
        return direct_forward(x, W, b, shape.pad_top, shape.pad_left, shape.OH, shape.OW, relu)
    if path in ("shifts", "taps"):
        if path == "shifts":
            y = shifted_forward(x, W, b, shape.pad_top, shape.pad_left, shape.OH, shape.OW)
        else:
            y = taps_forward(x, W, b, layer.stride, shape.pad_top, shape.pad_left, shape.OH,
                             shape.OW, rows_for(layer, x.itemsize))
        return np.maximum(y, 0, out=y) if relu else y
    return im2col_forward(layer, x, shape, relu)


@register(Conv2D, "forward_pool")
def conv2d_pool_forward(layer, x, training, pool, relu=False):
    """pool(conv(x)), or pool(max(conv(x), 0)) when relu, for a 2x2, stride-2 MaxPool2D:
    pooled by the Winograd kernel, block by block, where the forward pass runs on
    Winograd; else the two forwards in turn. Either way ``pool`` keeps its argmax and
    input shape for its backward."""
    shape = conv_shape(layer, x.shape, x.dtype)
    if conv_path(layer, "forward", shape) != "winograd" or (pool.K, pool.S) != (2, 2):
        return pool.forward(conv2d_forward(layer, x, training, relu))
    layer.x = x
    W, b = layer.params["W"], layer.params["b"] if layer.use_bias else None
    pooled, pool.arg = winograd_forward(x, W, b, shape.pad_top, shape.pad_left, shape.OH,
                                        shape.OW, relu=relu, pool=True)
    pool.x_shape, pool.x_dtype = (shape.N, shape.OH, shape.OW, layer.F), x.dtype
    pool.ran_on = "fast"
    return pooled


def im2col_forward(layer, x, shape, relu):
    """y = im2col(x) @ W_mat + b, one block of R rows of y at a time."""
    N, _, _, C = x.shape
    M, K, F = N * shape.OH * shape.OW, layer.KH * layer.KW * C, layer.F
    W_mat = layer.params["W"].reshape(K, F)
    b = layer.params["b"] if layer.use_bias else None
    y = np.empty((N, shape.OH, shape.OW, F), dtype=x.dtype)
    y_rows = y.reshape(M, F)
    R = block_rows(layer, M, K, x.itemsize)
    cols_buffers = [np.empty((R, K), dtype=x.dtype) for _ in range(num_threads())]  # per thread

    def block(i, thread):                # rows r0:r1 of y
        r0, r1 = i * R, min(M, i * R + R)
        cols = im2col_rows(x, layer.KH, layer.KW, layer.stride, shape.pad_top, shape.pad_left,
                           shape.OH, shape.OW, r0, cols_buffers[thread][:r1 - r0])  # (R, K)
        np.matmul(cols, W_mat, out=y_rows[r0:r1])                       # (R, F)
        if b is not None:
            y_rows[r0:r1] += b
        if relu:
            np.maximum(y_rows[r0:r1], 0, out=y_rows[r0:r1])

    parallel_blocks(-(-M // R), block)
    return y


@register(Conv2D, "backward")
def conv2d_backward(layer, dy, through_relu=False):
    """Fills grads W and b (unless frozen); returns dx, or None when not needs_input_grad.
    through_relu: dx where x > 0, else 0 (the backward of the ReLU that made x; on
    Winograd applied as dx is written)."""
    x = layer.x
    need_db = layer.use_bias and "b" not in layer.frozen
    need_dW = "W" not in layer.frozen
    shape = conv_shape(layer, x.shape, x.dtype, need_dW)
    if need_db or need_dW:
        dW, db = weight_grad(layer, x, dy, shape, need_dW, need_db)
        if need_dW:
            layer.grads["W"][...] = dW
        if need_db:
            layer.grads["b"][...] = db
    if not layer.needs_input_grad:
        return None
    return input_grad(layer, dy, x.shape, shape, x if through_relu else None)


@register(Conv2D, "backward_pool")
def conv2d_pool_backward(layer, dy_pooled, pool, through_relu=False):
    """dx (or None) from dL/d(pool(conv(x))), the gradient of the 2x2, stride-2 MaxPool2D
    fused after the layer; fills grads W and b. Where dW and dx run on Winograd, their
    kernels read dy through the pool's argmax as they copy it (each pooled value at its
    tap, zeros elsewhere: the pool's backward, never written out), and db sums it the
    same way; else the pool's backward makes dy and the conv's backward follows. The
    same numbers either way. through_relu: as conv2d_backward."""
    x = layer.x
    need_db = layer.use_bias and "b" not in layer.frozen
    need_dW = "W" not in layer.frozen
    shape = conv_shape(layer, x.shape, x.dtype, need_dW)
    on_winograd = ((not need_dW or conv_path(layer, "dW", shape) == "winograd")
                   and (not layer.needs_input_grad or conv_path(layer, "dx", shape) == "winograd"))
    if not on_winograd or (pool.K, pool.S) != (2, 2) or pool.ran_on != "fast":
        return conv2d_backward(layer, pool.backward(dy_pooled), through_relu)
    dy_pooled = np.ascontiguousarray(dy_pooled)
    unpool = (pool.arg, (shape.OH, shape.OW))                 # dy = the pool's backward
    if need_db:
        layer.grads["b"][...] = unpooled_column_sums(dy_pooled, pool.arg, shape.OH, shape.OW)
    if need_dW:
        layer.grads["W"][...] = winograd_weight_grad(x, dy_pooled, shape.pad_top, shape.pad_left,
                                                     REDUCE_GROUPS, unpool)
    if not layer.needs_input_grad:
        return None
    return winograd_forward(dy_pooled, flipped_weights(layer), None, *flipped_padding(layer, shape),
                            shape.H, shape.W, unpool=unpool, mask=x if through_relu else None)


def weight_grad(layer, x, dy, shape, need_dW, need_db):
    """(dW or None, db or None): db = the column sums of dy (float64, every core), dW by
    the rule's dW path."""
    KH, KW, F = layer.KH, layer.KW, layer.F
    dy_rows = dy.reshape(-1, F)
    db = column_sums(dy_rows) if need_db else None
    if not need_dW:
        return None, db
    path = conv_path(layer, "dW", shape)
    if path != "im2col":
        if path == "winograd":
            return winograd_weight_grad(x, dy, shape.pad_top, shape.pad_left, REDUCE_GROUPS), db
        if path == "direct":
            return direct_weight_grad(x, dy, KH, KW, shape.pad_top, shape.pad_left,
                                      REDUCE_GROUPS), db
        if path == "shifts":
            return shifted_weight_grad(x, dy, KH, KW, shape.pad_top, shape.pad_left), db
        return taps_weight_grad(x, dy, KH, KW, layer.stride, shape.pad_top, shape.pad_left,
                                rows_for(layer, x.itemsize), REDUCE_GROUPS), db
    return im2col_weight_grad(layer, x, dy_rows, shape), db


def im2col_weight_grad(layer, x, dy_rows, shape):
    """dW = cols.T @ dy, per fixed group of blocks."""
    C, F, KH, KW = x.shape[3], layer.F, layer.KH, layer.KW
    M, K = dy_rows.shape[0], KH * KW * C
    n_threads = num_threads()
    R = block_rows(layer, M, K, x.itemsize)
    n_blocks = -(-M // R)
    n_groups = min(REDUCE_GROUPS, n_blocks)     # fixed groups of blocks, one accumulator each
    dW_groups = np.zeros((n_groups, K, F), dtype=x.dtype)
    dW_block = np.empty((n_threads, K, F), dtype=x.dtype)                # per thread
    cols_buffers = [np.empty((R, K), dtype=x.dtype) for _ in range(n_threads)]

    def group(g, thread):                # group g: its range of blocks, in order
        for i in range(g * n_blocks // n_groups, (g + 1) * n_blocks // n_groups):
            r0, r1 = i * R, min(M, i * R + R)
            cols = im2col_rows(x, KH, KW, layer.stride, shape.pad_top, shape.pad_left,
                               shape.OH, shape.OW, r0, cols_buffers[thread][:r1 - r0])  # (R, K)
            np.matmul(cols.T, dy_rows[r0:r1], out=dW_block[thread])        # (K, F)
            dW_groups[g] += dW_block[thread]

    parallel_blocks(n_groups, group)
    return dW_groups.sum(axis=0).reshape(KH, KW, C, F)


def flipped_weights(layer):
    """W_flip (KH, KW, F, C): W flipped in space and transposed in channels, the kernel
    whose stride-1 convolution of dy (padded by KH - 1 - pad) is dx."""
    return np.ascontiguousarray(layer.params["W"][::-1, ::-1].transpose(0, 1, 3, 2))


def input_grad(layer, dy, x_shape, shape, relu_mask=None):
    """dx (N, H, W, C) from dy (N, OH, OW, F), by the rule's dx path; with relu_mask
    (x_shape), dx where relu_mask > 0, else 0: in the Winograd kernel as it writes dx,
    else by a pass of the ReLU's backward kernel over dx, in place."""
    path = conv_path(layer, "dx", shape)
    if path == "winograd":
        return winograd_forward(dy, flipped_weights(layer), None, *flipped_padding(layer, shape),
                                shape.H, shape.W, mask=relu_mask)
    dx = np.ascontiguousarray(unmasked_input_grad(layer, dy, x_shape, shape, path))
    if relu_mask is not None:
        flat_dx = dx.reshape(-1)
        relu_backward(relu_mask.reshape(-1), flat_dx, flat_dx)
    return dx


def unmasked_input_grad(layer, dy, x_shape, shape, path):
    """dx (N, H, W, C) from dy (N, OH, OW, F) by ``path``, any but Winograd."""
    if path == "col2im":
        return col2im_input_grad(layer, dy, x_shape, shape)
    dy_pad_top, dy_pad_left = flipped_padding(layer, shape)
    if path == "shifts":                 # the flipped tap matrices as views of W: no copy
        return shifted_forward(dy, layer.params["W"], None, dy_pad_top, dy_pad_left, shape.H,
                               shape.W, flipped=True)
    W_flip = flipped_weights(layer)
    if path == "direct":
        return direct_forward(dy, W_flip, None, dy_pad_top, dy_pad_left, shape.H, shape.W)
    if path == "taps":
        return taps_forward(dy, W_flip, None, 1, dy_pad_top, dy_pad_left, shape.H, shape.W,
                            rows_for(layer, dy.itemsize))
    return flipped_im2col_input_grad(layer, dy, x_shape, W_flip, dy_pad_top, dy_pad_left)


def flipped_im2col_input_grad(layer, dy, x_shape, W_flip, dy_pad_top, dy_pad_left):
    """dx = im2col(dy padded by (dy_pad_top, dy_pad_left)) @ W_flip, in blocks of rows of dx."""
    N, H, W, C = x_shape
    KH, KW, F = layer.KH, layer.KW, layer.F
    W_flip_mat = W_flip.reshape(KH * KW * F, C)
    dx = np.empty(x_shape, dtype=dy.dtype)
    dx_rows = dx.reshape(N * H * W, C)
    M, K = N * H * W, KH * KW * F
    R = block_rows(layer, M, K, dy.itemsize)
    cols_buffers = [np.empty((R, K), dtype=dy.dtype) for _ in range(num_threads())]  # per thread

    def block(i, thread):                # rows r0:r1 of dx
        r0, r1 = i * R, min(M, i * R + R)
        cols = im2col_rows(dy, KH, KW, 1, dy_pad_top, dy_pad_left, H, W, r0,
                           cols_buffers[thread][:r1 - r0])               # (R, KH*KW*F)
        np.matmul(cols, W_flip_mat, out=dx_rows[r0:r1])                  # (R, C)

    parallel_blocks(-(-M // R), block)
    return dx


def col2im_input_grad(layer, dy, x_shape, shape):
    """dx = col2im(dy @ W_mat.T), in blocks of whole images (col2im adds across rows)."""
    N = x_shape[0]
    KH, KW, F = layer.KH, layer.KW, layer.F
    OH, OW = shape.OH, shape.OW
    K = KH * KW * layer.C
    W_mat_T = layer.params["W"].reshape(K, F).T                          # (F, K)
    dx = np.empty(x_shape, dtype=dy.dtype)
    dy_rows = dy.reshape(N * OH * OW, F)
    R = block_rows(layer, N * OH * OW, K, dy.itemsize)
    images_per_block = max(1, R // (OH * OW))
    dcols_buffers = [np.empty((R, K), dtype=dy.dtype) for _ in range(num_threads())]  # per thread

    def block(i, thread):                # images n0:n1 of dx
        n0, n1 = i * images_per_block, min(N, i * images_per_block + images_per_block)
        dx[n0:n1] = 0.0
        for r0 in range(n0 * OH * OW, n1 * OH * OW, R):
            r1 = min(r0 + R, n1 * OH * OW)
            dcols = np.matmul(dy_rows[r0:r1], W_mat_T,
                              out=dcols_buffers[thread][:r1 - r0])       # (R, K)
            col2im_rows(dcols, KH, KW, layer.stride, shape.pad_top, shape.pad_left, OH, OW, r0, dx)

    parallel_blocks(-(-N // images_per_block), block)
    return dx
