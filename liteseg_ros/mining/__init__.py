"""Choosing the frames of a robot's recordings worth labelling (``liteseg-mine``), without ROS: the recordings'
frames (:mod:`.recordings`), what the model makes of each (:mod:`.scores`), the choice (:mod:`.selection`) and
the files a labelling tool takes (:mod:`.output`)."""
