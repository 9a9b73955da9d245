"""The library's activities, as methods of classes that hold their dependencies (stores, trainables).

Register them on a worker with ``TemporalMLPlugin(activities=...)`` or ``Worker(activities=...)``::

    training = TrainingActivities(trainables={"mlp": MyMLP()}, snapshot_root=..., checkpoint_root=...)
    Worker(client, task_queue="train", activities=training.activities(), activity_executor=pool)
"""
