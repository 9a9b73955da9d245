"""Workflow bases. They are undecorated: subclass, add ``@workflow.defn`` and re-declare
``@workflow.run`` (calling ``super().run``); signal/query/update handlers are inherited."""
