"""Plain training loops. Studies wrap them as Ray Tune trainables by passing `report=ray.tune.report`."""
