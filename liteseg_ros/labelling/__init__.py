"""Files labelling tools read, without ROS: CVAT's "Segmentation mask 1.1" archive (the PASCAL VOC layout, as
datumaro reads and writes it: :mod:`.voc`) and Label Studio's brush tasks (its RLE: :mod:`.label_studio`)."""
