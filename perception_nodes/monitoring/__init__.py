"""What the monitor measures, without ROS: topic rates and jitter against the site's expected rates, data age
from header stamps at every stage, frames lost between stages, model drift against a stored reference, and the
Prometheus view of all of it (``metrics``). The monitor node and the detector node are thin layers over these.
"""
