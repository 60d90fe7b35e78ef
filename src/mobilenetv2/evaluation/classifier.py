"""``Classifier``: load a model once, predict labels for images given as paths, PIL images, arrays or tensors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mobilenetv2.data.images import load_image, to_rgb, upright
from mobilenetv2.data.preprocessing import normalize_transform, pixel_transform
from mobilenetv2.errors import UserError
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks import get_task
from mobilenetv2.tasks.classification import Prediction

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Classifier:
    """A model with its class names and preprocessing (the task's predictor for classification).

    ``predict`` takes paths, PIL images, HWC uint8 arrays, or tensors. A tensor is taken as an RGB image in [0, 1]
    (CHW float, or uint8 in [0, 255]), not yet resized or normalised; the checkpoint's own preprocessing is applied.
    """

    TASK = "classification"

    def __init__(self, model: torch.nn.Module | Any, class_names: Sequence[str] | None = None,
                 preprocessing: Preprocessing | None = None, device: str | torch.device | None = None):
        self.is_torch = isinstance(model, torch.nn.Module)
        self.device = torch.device(device) if device is not None else (default_device() if self.is_torch else torch.device("cpu"))
        self.model = model.to(self.device).eval() if self.is_torch else model
        self.set_preprocessing(preprocessing or Preprocessing())
        self.task = get_task(self.TASK)
        self._class_names = list(class_names) if class_names is not None else None

    def set_preprocessing(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing
        self.to_pixels, self.normalize = pixel_transform(preprocessing), normalize_transform(preprocessing)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None,
             threads: int | None = None) -> Classifier:
        """Our checkpoint (a ``.safetensors`` file or a run folder), a torchvision/timm state dict, an ``.onnx`` file
        (run by onnxruntime) or an ExecuTorch ``.pte`` program (with its ``.pte.json`` metadata beside it)."""
        model, class_names, preprocessing, _ = load_parts(path, threads)
        return cls(model, class_names, preprocessing, device=device)

    def configure(self, **options: Any) -> None:
        """Task-specific prediction options (detection: score_threshold, max_detections, tile, tile_overlap); None
        values are left as they are. A classifier has none: giving one is an error."""
        given = [name for name, value in options.items() if value is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise UserError(f"{flags}: not an option of a {self.TASK} model")

    @property
    def num_classes(self) -> int | None:
        if self._class_names is not None:
            return len(self._class_names)
        return getattr(self.model, "num_classes", None)

    @property
    def class_names(self) -> list[str]:
        """The stored class names, or "0", "1", ... when the checkpoint has none."""
        if self._class_names is not None:
            return self._class_names
        return [str(i) for i in range(self.num_classes or 0)]

    @property
    def has_class_names(self) -> bool:
        return self._class_names is not None

    @property
    def input_channels(self) -> int:
        """Channels of the model's input: a torch model's ``in_chans``; a runtime's (onnxruntime, ExecuTorch) input
        channel dimension when the file fixes it, else 3."""
        if self.is_torch:
            return int(self.model.in_chans)
        session = getattr(self.model, "session", None)  # onnxruntime: the dimension may be a name ("channels")
        method = getattr(self.model, "_forward", None)  # ExecuTorch: the program's shapes are static
        if session is not None:
            shape = session.get_inputs()[0].shape
        elif method is not None:
            shape = tuple(method.metadata.input_tensor_meta(0).sizes())
        else:
            shape = ()
        return shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW float batch -> logits [N, C] (float32, CPU)."""
        if self.is_torch:
            return self.model(batch.to(self.device, non_blocking=True)).float().cpu()
        return torch.from_numpy(np.asarray(self.model(batch.cpu().numpy().astype(np.float32)), dtype=np.float32))

    def logits_of_pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """``logits`` of a batch of ``prepare`` inputs (resized, not yet normalised): normalised here, in one op."""
        return self.logits(self.normalize(batch))

    def probabilities(self, batch: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Softmax probabilities; with ``tta`` the average over the batch and its horizontal flip."""
        probs = self.logits(batch).softmax(dim=1)
        if tta:
            probs = (probs + self.logits(batch.flip(-1)).softmax(dim=1)) / 2
        return probs

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """One image of any accepted kind -> a normalised CHW tensor of the model's input size."""
        return self.normalize(self.pixels(image))

    def pixels(self, image: ImageInput) -> torch.Tensor:
        """One image of any accepted kind -> a CHW tensor of the model's input size, not yet normalised."""
        if isinstance(image, (str, os.PathLike)):
            image = load_image(image)
        elif isinstance(image, Image.Image):
            image = to_rgb(upright(image))
        elif isinstance(image, np.ndarray):
            image = _array_to_pil(image)
        elif isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] not in (1, 3):
                raise UserError(f"a tensor image must be CHW with 1 or 3 channels, got shape {tuple(image.shape)}")
            image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
        else:
            raise UserError(f"cannot predict on a {type(image).__name__}; give"
                            f" paths, PIL images, HWC uint8 arrays or CHW tensors")
        return self.to_pixels(image).as_subclass(torch.Tensor)

    def prepare(self, image: ImageInput) -> tuple[torch.Tensor, Any]:
        """One image -> its model inputs [k, C, S, S] (resized, uint8 from PIL) and what ``finish`` needs; a server
        batches the inputs of many requests through ``logits_of_pixels`` and gives each request its share of the
        outputs."""
        return self.pixels(image)[None], None

    def finish(self, outputs: torch.Tensor, state: Any, top_k: int = 5) -> Any:
        """The prediction of one image from the outputs of its ``prepare`` inputs."""
        return self.task.postprocess(outputs, self.class_names, top_k)[0]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5, batch_size: int = 32,
                tta: bool = False) -> list[Prediction]:
        """The ``top_k`` labels and probabilities of each image (a single image gives a list of one)."""
        if top_k < 1:
            raise UserError(f"top_k must be >= 1, got {top_k}")
        items = [images] if _is_single(images) else list(images)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = torch.stack([self.preprocess(x) for x in chunk])
            # log-probabilities: the task's softmax of them gives back the (TTA-averaged) probabilities
            predictions = self.task.postprocess(self.probabilities(batch, tta=tta).log(), self.class_names, top_k)
            for item, prediction in zip(chunk, predictions):
                prediction.source = str(item) if isinstance(item, (str, os.PathLike)) else None
                results.append(prediction)
        return results


def load_parts(path: str | os.PathLike[str], threads: int | None = None,
               spin: bool = True) -> tuple[Any, list[str] | None, Preprocessing, str]:
    """(model or runtime backend, class names, preprocessing, task) of a checkpoint, ``.onnx`` or ``.pte`` file;
    ``spin=False``: onnxruntime's idle threads sleep instead of busy-waiting (a server has other work for the CPU)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".onnx", ".pte"):
        if suffix == ".onnx":
            from mobilenetv2.export.runtime import OnnxBackend as Backend
        else:
            from mobilenetv2.export.executorch import ExecuTorchBackend as Backend
        backend = Backend(path, threads=threads, **({"spin": spin} if suffix == ".onnx" else {}))
        return backend, backend.class_names, backend.preprocessing, getattr(backend, "task", "classification")
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.model, ckpt.class_names, ckpt.preprocessing, ckpt.task


def _is_single(images: Any) -> bool:
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return True
    return isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 3


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise UserError(f"an array image must be HWC with 1, 3 or 4 channels, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise UserError(f"an array image must be uint8 (0-255), got {array.dtype}; give float images as CHW tensors in [0, 1]")
    return to_rgb(Image.fromarray(array[..., 0] if array.shape[2] == 1 else array))
