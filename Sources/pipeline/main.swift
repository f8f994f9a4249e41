import CommandPipeline
print("pipeline: not yet implemented")
