"""A labelled point cloud from a registered depth image, without ROS: depth decoding (:mod:`.images`), the camera's
intrinsics (:mod:`.camera`), the cloud (:mod:`.cloud`) and the pairing of segmented frames with depth images by
header stamp (:mod:`.pairing`). The node (:mod:`liteseg_ros.ros.depth`) and the offline replay use them."""
