"""Has CVAT's engine and Label Studio's SDK read a liteseg-mine output folder (run by hand, in the judges' venv of
make_judged_data.py): datumaro imports cvat_annotations.zip as CVAT does ("Segmentation mask 1.1" = VOC) and each
image's masks must equal EXPECTED.npz (stem -> label ids, background 0, as the model predicts them + 1);
label-studio-sdk validates every task's prediction against label_studio_config.xml.

    /tmp/judges/bin/python test/data/labelling_judges/judge_mining_output.py OUT EXPECTED.npz
"""

import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from datumaro.components.dataset import Dataset
from label_studio_sdk.label_interface import LabelInterface


def main(out: Path, expected_path: Path) -> int:
    expected = np.load(expected_path)
    with tempfile.TemporaryDirectory() as folder:
        zipfile.ZipFile(out / "cvat_annotations.zip").extractall(folder)
        dataset = Dataset.import_from(folder, "voc_segmentation")
        equal = 0
        for item in dataset:
            got = np.full(expected[item.id].shape, 255, np.uint8)
            for annotation in item.annotations:
                got[annotation.image] = annotation.label
            equal += bool((got == expected[item.id]).all())
    interface = LabelInterface((out / "label_studio_config.xml").read_text())
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    valid = sum(interface.validate_prediction(task["predictions"][0]) for task in tasks)
    print(f"datumaro: {len(dataset)} items, {equal} with the model's masks; label-studio-sdk: {valid} of {len(tasks)} "
          "predictions valid")
    return 0 if equal == len(dataset) == len(expected.files) and valid == len(tasks) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
