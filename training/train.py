"""``liteseg-train``: train LiteSeg on a Cityscapes-layout dataset (single process, or DDP under torchrun).

    liteseg-train --config config/train_mobilenetv2.yaml --data /data/cityscapes --out runs/mbv2 [key=value ...]
    liteseg-train --out runs/mbv2 --data /data/cityscapes --resume          # continue exactly where it stopped
        (--resume reads RUN_DIR/config.yaml; overrides given with it, e.g. fine.epochs=50, are applied and saved)
    torchrun --nproc-per-node 4 -m liteseg_ros.training.train --config ... --data ... --out ...   # multi-GPU, -node

Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes RUN_DIR/checkpoints/last.pt and exits with
code 130; ``--resume`` continues from it. Exit code 2 means a configuration or data error (nothing trained).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from liteseg_ros.errors import EXIT_INTERRUPTED, ConfigError, LiteSegError
from liteseg_ros.logs import get_logger
from liteseg_ros.tools.cli.conventions import CLI_HANDLER, OneLineArgumentParser, run_cli
from liteseg_ros.training.config import TrainConfig, dump_config, load_config
from liteseg_ros.training.distributed import DistContext, init_distributed, shutdown

log = get_logger("liteseg-train")


def build_parser() -> argparse.ArgumentParser:
    """liteseg-train's arguments."""
    parser = OneLineArgumentParser(prog="liteseg-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", type=Path, help="YAML config (default with --resume: RUN_DIR/config.yaml)")
    parser.add_argument("--data", type=Path, required=True,
                        help="the data set: a folder or a zip archive (a CVAT 'Segmentation mask 1.1' export as it "
                             "comes, PASCAL VOC, the plain layout, or Cityscapes)")
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs, config.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    parser.add_argument("--benchmark-loader", type=int, metavar="N", default=0,
                        help="only time N batches of the first stage's loader (no training) and print the rate")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.batch_size=8")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def setup_logging(run_dir: Path, level: str, is_main: bool) -> None:
    """Log to stderr (rank 0 at ``level``, other ranks warnings only) and to RUN_DIR/train.log (rank 0)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "liteseg_train", False) or getattr(h, CLI_HANDLER, False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / "train.log", encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.liteseg_train = True
        root.addHandler(handler)
    root.setLevel(level if is_main else "WARNING")


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise ConfigError("--config is required (unless --resume, which reads RUN_DIR/config.yaml)")
        config_path = args.out / "config.yaml"
    if not args.resume and (args.out / "checkpoints" / "last.pt").exists():
        raise ConfigError(
            f"{args.out} already holds a training run: pass --resume to continue it, or choose another --out"
        )
    return load_config(config_path, args.overrides)


def seed_everything(config: TrainConfig, context: DistContext) -> None:
    """Global RNGs (augmentation has its own per-sample generators) and determinism settings."""
    seed = config.runtime.seed + context.rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if config.runtime.threads:
        torch.set_num_threads(config.runtime.threads)
    if config.runtime.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=context.device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    elif context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def install_stop_handlers(trainer) -> None:
    """First SIGINT/SIGTERM: stop after the current step with a checkpoint; a second SIGINT aborts at once."""

    def request_stop(signum, _frame):
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        log.warning("%s received: finishing the current step, then saving a checkpoint", signal.Signals(signum).name)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


def benchmark_loader(trainer, batches: int) -> None:
    """Print how many samples/s the first stage's loader delivers on its own (to compare with the step time)."""
    from liteseg_ros.training import builders

    name = trainer.config.stages()[0][0]
    loader = builders.build_train_loader(trainer.config, trainer.train_sets[name], 0, trainer.context)
    loader.batch_sampler.set_epoch(0)
    iterator, count, first = iter(loader), 0, None
    started = time.perf_counter()
    for images, _ in iterator:
        if first is None:
            first = time.perf_counter()  # exclude worker start-up from the rate
        else:
            count += images.shape[0]
        if count >= batches * trainer.config.data.batch_size:
            break
    elapsed = time.perf_counter() - (first or started)
    print(
        f"loader: {count} samples in {elapsed:.2f} s = {count / max(elapsed, 1e-9):.1f} samples/s "
        f"({trainer.config.data.workers} workers, crops {trainer.config.data.crop_sizes}, "
        f"start-up {(first or started) - started:.2f} s)"
    )


TRAIN_EXTRA_MODULES = ("tqdm", "tensorboard")  # what the trainer imports beyond the runtime (setup.py: train extra)


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    context = None
    try:
        config = resolve_config(args)
        missing = [name for name in TRAIN_EXTRA_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"liteseg-train needs the train extra ({', '.join(missing)} missing): "
                              "pip install 'liteseg_ros[train]'")
        context = init_distributed(config.runtime.device)
        from liteseg_ros.training import builders

        data = builders.build_datasets(config, args.data)  # checked before anything is written
        config = builders.with_data_classes(config, data.classes)
        setup_logging(args.out, args.log_level, context.is_main)
        seed_everything(config, context)
        if context.is_main:
            dump_config(config, args.out / "config.yaml")
        return _train(args, config, data, context)
    except LiteSegError as error:
        _note_in_run_log(error)
        raise
    finally:
        if context is not None:
            shutdown(context)


def _train(args: argparse.Namespace, config: TrainConfig, data, context: DistContext) -> int:
    from liteseg_ros.training.engine import Trainer

    trainer = Trainer(config, data, args.out, context, resume=args.resume)
    if args.benchmark_loader:
        benchmark_loader(trainer, args.benchmark_loader)
        return 0
    install_stop_handlers(trainer)
    log.info("training on %s (world size %d, amp %s), run dir %s", context.device, context.world_size, trainer.amp,
             args.out)
    outcome = trainer.run()
    log.info("training %s at iteration %d; best val mIoU %.4f at iteration %d", outcome, trainer.state.iteration,
             trainer.state.best_miou, trainer.state.best_iteration)
    return EXIT_INTERRUPTED if outcome == "interrupted" else 0


def _note_in_run_log(error: LiteSegError) -> None:
    """An error after the run directory's log was set up is written there too (stderr gets run_cli's line)."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "liteseg_train", False) and isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (error,), None))


def main(argv: list[str] | None = None) -> int:
    """Console entry point of liteseg-train: exit status 0, 2 (a configuration or data error), 130 (stopped)."""
    return run_cli(_main, argv, "liteseg-train")


if __name__ == "__main__":
    sys.exit(main())
