"""The training loop: stages, poly LR, AMP, DDP, periodic validation, checkpoints, TensorBoard, resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from liteseg_ros.logs import get_logger
from liteseg_ros.model import CheckpointMeta, save_checkpoint
from liteseg_ros.training import builders
from liteseg_ros.training.checkpointing import TrainState, load_training_checkpoint, restore, save_training_checkpoint
from liteseg_ros.training.config import StageSection, TrainConfig
from liteseg_ros.training.distributed import DistContext, any_rank, mean_scalar
from liteseg_ros.training.losses import segmentation_loss
from liteseg_ros.training.schedule import poly_lr, set_lr
from liteseg_ros.training.validation import validate, write_sample_images

log = get_logger(__name__)


class Trainer:
    """Runs the configured stages; ``stop_requested`` (set by a signal handler) ends it after a saved step."""

    def __init__(self, config: TrainConfig, data: builders.TrainingData | str | Path, run_dir: str | Path,
                 context: DistContext, *, resume: bool = False):
        """``data``: the checked data (:func:`builders.build_datasets`) or its folder; ``config.model.num_classes``
        follows the data set's class set."""
        if not isinstance(data, builders.TrainingData):
            data = builders.build_datasets(config, data)  # data errors surface here, first
        config = builders.with_data_classes(config, data.classes)
        self.config, self.context, self.run_dir = config, context, Path(run_dir)
        self.classes = data.classes
        self.train_sets = data.train_sets
        self.val_data = builders.build_val_dataset(config, data.val_set)
        log.info("classes (%d): %s", len(self.classes), ", ".join(self.classes.names))
        self.memory_format = torch.channels_last if config.runtime.channels_last else torch.contiguous_format
        self.model = builders.build_model(config, initialise=not resume).to(context.device,
                                                                          memory_format=self.memory_format)
        if context.distributed and config.runtime.sync_bn:
            if context.device.type == "cuda":
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            else:
                log.warning("runtime.sync_bn needs CUDA (torch has no CPU SyncBatchNorm): per-process BatchNorm")
        self.net = (
            DistributedDataParallel(
                self.model, device_ids=[context.device.index] if context.device.type == "cuda" else None
            )
            if context.distributed
            else self.model
        )
        amp_setting = config.runtime.amp
        self.amp = context.device.type == "cuda" and amp_setting in ("auto", True)
        if amp_setting is True and not self.amp:
            log.warning("runtime.amp=true needs CUDA; training in fp32 on %s", context.device)
        self.scaler = torch.amp.GradScaler(context.device.type, enabled=self.amp)
        self.optimizer = builders.build_optimizer(config, self.model, config.stages()[0][1].base_lr)
        self.state = TrainState()
        self.stop_requested = False
        self.timing = {"data": 0.0, "step": 0.0, "steps": 0, "samples": 0}
        self.writer = None
        if context.is_main:
            from torch.utils.tensorboard import SummaryWriter

            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        if resume:
            self._resume()

    # ----------------------------------------------------------------------------------------------- resume/save
    def _resume(self) -> None:
        path = self.run_dir / "checkpoints" / "last.pt"
        payload = load_training_checkpoint(path, map_location=self.context.device)
        self.state = restore(payload, model=self.model, optimizer=self.optimizer, scaler=self.scaler)
        log.info(
            "resumed from %s at iteration %d (stage %d, epoch %d, batch %d)",
            path,
            self.state.iteration,
            self.state.stage_index,
            self.state.epoch,
            self.state.batch,
        )

    def save(self, name: str = "last") -> None:
        if not self.context.is_main:
            return
        path = self.run_dir / "checkpoints" / f"{name}.pt"
        save_training_checkpoint(
            path,
            model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler,
            state=self.state,
            config=self.config.to_dict(),
        )
        log.debug("saved %s at iteration %d", path, self.state.iteration)

    def export(self, name: str) -> None:
        """Write the deployable model (our format) as RUN_DIR/<name>.pt, with its latest validation score."""
        if not self.context.is_main:
            return
        validated = self.state.last_val_iteration == self.state.iteration
        extra = {"iteration": self.state.iteration, "val_miou": self.state.last_miou if validated else None}
        meta = CheckpointMeta.for_model(self.model, classes=self.classes, input_size=self._export_input_size(),
                                        origin=f"liteseg-train {self.run_dir.name}", extra=extra)
        save_checkpoint(self.run_dir / f"{name}.pt", self.model, meta, half=self.config.checkpoint.export_half)

    def _export_input_size(self) -> tuple[int, int]:
        """checkpoint.export_input_size, else the size validation runs at (val crop or first val label)."""
        size = self.config.checkpoint.export_input_size or self.config.data.val_crop
        if size is None:
            _, label = self.val_data[0]
            size = label.shape[-2:]
        return int(size[0]), int(size[1])

    # ------------------------------------------------------------------------------------------------- the loop
    def run(self) -> str:
        """Train all stages (or up to a stop); returns ``finished``, ``interrupted`` or ``limit``."""
        outcome = "finished"
        for stage_index, (name, stage) in enumerate(self.config.stages()):
            if stage_index < self.state.stage_index:
                continue
            outcome = self._run_stage(stage_index, name, stage)
            if outcome != "finished":
                break
            self.state.stage_index, self.state.epoch, self.state.batch = stage_index + 1, 0, 0
        self.save("last")
        if outcome != "interrupted":
            self.export("model_final")
        self._log_timing_summary()
        if self.writer:
            self.writer.close()
        return outcome

    def _run_stage(self, stage_index: int, name: str, stage: StageSection) -> str:
        loader = builders.build_train_loader(self.config, self.train_sets[name], stage_index, self.context)
        sampler = loader.batch_sampler
        total = builders.stage_length(self.config, stage, len(sampler))
        log.info(
            "stage %s: %d images, %d epochs x %d batches of %d, base lr %g",
            name,
            len(self.train_sets[name]),
            stage.epochs,
            len(sampler),
            self.config.data.batch_size,
            stage.base_lr,
        )
        while self.state.epoch < stage.epochs:
            sampler.set_epoch(self.state.epoch, start_batch=self.state.batch)
            outcome = self._run_epoch(name, stage, loader, total)
            if outcome != "finished":
                return outcome
            self.state.epoch, self.state.batch = self.state.epoch + 1, 0
            if self.config.validation.unit == "epoch" and self.state.epoch % self.config.validation.every == 0:
                self.run_validation()
        return "finished"

    def _update_lr(self, stage: StageSection, step: int, total: int) -> None:
        schedule = self.config.schedule
        every = stage.lr_update_every or schedule.update_every
        lr = poly_lr(stage.base_lr, step, total, power=schedule.power, update_every=every)
        if set_lr(self.optimizer, lr) and self.config.optim.reset_on_lr_update:
            self.optimizer.state.clear()  # the authors build a new optimiser at every LR update

    def _run_epoch(self, name: str, stage: StageSection, loader, total: int) -> str:
        per_epoch = len(loader.batch_sampler)
        if self.config.schedule.unit == "epoch":
            self._update_lr(stage, self.state.epoch, total)
        bar = tqdm(
            total=per_epoch,
            initial=self.state.batch,
            disable=not self.context.is_main,
            leave=False,
            desc=f"{name} epoch {self.state.epoch + 1}/{stage.epochs}",
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        with bar:
            for images, labels in loader:
                fetched = time.perf_counter()
                if self.config.schedule.unit == "iteration":
                    self._update_lr(stage, self.state.epoch * per_epoch + self.state.batch, total)
                loss = self._step(images, labels)
                self.state.batch, self.state.iteration = self.state.batch + 1, self.state.iteration + 1
                self._account(fetched - started, time.perf_counter() - fetched, images.shape[0])
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{self.optimizer.param_groups[0]['lr']:.3g}")
                outcome = self._after_step(loss)
                if outcome != "continue":
                    return outcome
                started = time.perf_counter()
        return "finished"

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        device = self.context.device
        images = images.to(device, non_blocking=True, memory_format=self.memory_format)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.net(images)
        loss = segmentation_loss(logits.float(), labels, self.config.optim)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def _after_step(self, loss: float) -> str:
        """Logging, checkpoints, iteration-based validation and stop conditions after one optimiser step."""
        iteration, runtime = self.state.iteration, self.config.runtime
        if iteration % runtime.log_every == 0:
            self._log_scalars(mean_scalar(loss, self.context))
        if iteration % self.config.checkpoint.every_iterations == 0:
            self.save("last")
        if self.config.validation.unit == "iteration" and iteration % self.config.validation.every == 0:
            self.run_validation()
        if any_rank(self.stop_requested, self.context):
            log.warning("stop requested: saving a checkpoint at iteration %d and exiting", iteration)
            self.save("last")
            return "interrupted"
        if runtime.max_iterations is not None and iteration >= runtime.max_iterations:
            log.info("runtime.max_iterations=%d reached", runtime.max_iterations)
            return "limit"
        return "continue"

    # -------------------------------------------------------------------------------------- logging/validation
    def _account(self, data_time: float, step_time: float, batch: int) -> None:
        self.timing["data"] += data_time
        self.timing["step"] += step_time
        self.timing["steps"] += 1
        self.timing["samples"] += batch

    def _log_scalars(self, loss: float) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        steps = max(1, self.timing["steps"])
        record = {
            "iteration": self.state.iteration,
            "loss": loss,
            "lr": lr,
            "data_s": self.timing["data"] / steps,
            "step_s": self.timing["step"] / steps,
        }
        if self.writer:
            self.writer.add_scalar("train/loss", loss, self.state.iteration)
            self.writer.add_scalar("train/lr", lr, self.state.iteration)
            self.writer.add_scalar("time/data_wait_s", record["data_s"], self.state.iteration)
            self.writer.add_scalar("time/step_s", record["step_s"], self.state.iteration)
        self._record(record)
        log.info(
            "iter %d loss %.4f lr %.3g (mean per step: compute %.3f s, waiting for data %.3f s)",
            self.state.iteration,
            loss,
            lr,
            record["step_s"],
            record["data_s"],
        )

    def _record(self, record: dict) -> None:
        if self.context.is_main:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def run_validation(self) -> float | None:
        """Validate (sharded over ranks), log, keep the best checkpoint; returns the class mIoU."""
        scores = validate(self.model, self.val_data, self.context, self.classes, amp=self.amp)
        miou = scores.miou
        if self.writer:
            self.writer.add_scalar("val/miou", miou or 0.0, self.state.iteration)
            self.writer.add_scalar("val/category_miou", scores.category_miou or 0.0, self.state.iteration)
            write_sample_images(
                self.writer,
                self.model,
                self.val_data,
                self.config.validation.num_images_logged,
                self.state.iteration,
                self.context.device,
                self.classes,
            )
            for name, iou in scores.per_class.items():
                if iou is not None:
                    self.writer.add_scalar(f"val/iou/{name}", iou, self.state.iteration)
        self._record({"iteration": self.state.iteration, "val_miou": miou, "val_category_miou": scores.category_miou,
                      "val_per_class": scores.per_class})
        category = f", category mIoU {scores.category_miou:.4f}" if scores.category_miou is not None else ""
        log.info("validation at iteration %d: class mIoU %.4f%s (%d images); per class: %s", self.state.iteration,
                 miou or 0.0, category, scores.frames,
                 ", ".join(f"{name} {'n/a' if iou is None else f'{iou:.3f}'}"
                           for name, iou in scores.per_class.items()))
        self.state.last_miou, self.state.last_val_iteration = (miou if miou is not None else -1.0), self.state.iteration
        if miou is not None and miou > self.state.best_miou:
            self.state.best_miou, self.state.best_iteration = miou, self.state.iteration
            self.save("best")
            self.export("model_best")
        return miou

    def _log_timing_summary(self) -> None:
        steps = self.timing["steps"]
        if steps == 0:
            return
        data, step = self.timing["data"], self.timing["step"]
        log.info(
            "timing over %d steps: compute %.3f s/step, waiting for data %.4f s/step (%.1f%% of the loop), "
            "%.1f samples/s",
            steps,
            step / steps,
            data / steps,
            100 * data / max(1e-9, data + step),
            self.timing["samples"] / max(1e-9, data + step),
        )
