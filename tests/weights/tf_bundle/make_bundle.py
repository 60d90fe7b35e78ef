"""Writes model.ckpt.* here with TensorFlow's own Saver (run once under TensorFlow 2: ``python make_bundle.py``).

The test reads the files without TensorFlow and recomputes the values with ``value(name, shape, dtype)``: a handful of
variables named like the Object Detection API's, of the dtypes and shapes the import needs (HWIO and depthwise kernels,
BatchNorm vectors, an ExponentialMovingAverage shadow, int64 global_step), and enough of them that the SSTable index
uses prefix compression across more than one restart point.
"""

from pathlib import Path

import numpy as np

VARIABLES = {
    "FeatureExtractor/MobilenetV2/Conv/weights": ((3, 3, 3, 4), np.float32),
    "FeatureExtractor/MobilenetV2/Conv/weights/ExponentialMovingAverage": ((3, 3, 3, 4), np.float32),
    "FeatureExtractor/MobilenetV2/Conv/BatchNorm/gamma": ((4,), np.float32),
    "FeatureExtractor/MobilenetV2/Conv/BatchNorm/beta": ((4,), np.float32),
    "FeatureExtractor/MobilenetV2/Conv/BatchNorm/moving_mean": ((4,), np.float32),
    "FeatureExtractor/MobilenetV2/Conv/BatchNorm/moving_variance": ((4,), np.float32),
    "FeatureExtractor/MobilenetV2/expanded_conv/depthwise/depthwise_weights": ((3, 3, 4, 1), np.float32),
    "BoxPredictor_0/BoxEncodingPredictor/biases": ((12,), np.float32),
    "BoxPredictor_0/ClassPredictor/weights": ((1, 1, 4, 6), np.float32),
    "BoxPredictor_0/ClassPredictor/biases": ((6,), np.float32),
    "Anchors/scales": ((5,), np.float64),
    "global_step": ((), np.int64),
    "step_count": ((2,), np.int32),
    **{f"FeatureExtractor/MobilenetV2/expanded_conv_{k}/project/biases": ((2,), np.float32) for k in range(1, 17)},
}


def value(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The variable's value: a pattern from its name's length and shape that no two variables share."""
    count = int(np.prod(shape))
    return (np.arange(count, dtype=np.float64) * 0.25 - len(name)).astype(dtype).reshape(shape)


def main() -> None:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(value(n, s, d), name=n) for n, (s, d) in VARIABLES.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(Path(__file__).parent / "model.ckpt"), write_meta_graph=False)


if __name__ == "__main__":
    main()
