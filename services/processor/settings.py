from pathlib import Path

from pydantic import Field

from services.common.settings import ConnectionSettings


class ProcessorSettings(ConnectionSettings):
    app_id: str = Field("jobledger-processor", description="faust app id: the decider's consumer group")
    runner_group_id: str = Field("jobledger-runner", description="consumer group of the runners")
    runner_concurrency: int = Field(3, ge=1, description="jobs one processor process runs at once")
    runner_id: str = Field("", description="name reported in JobStarted; default host:pid")
    handler_modules: list[str] = Field(
        ["services.processor.builtin"], description="modules whose @handler functions are loaded"
    )
    state_dir: Path = Field(Path("var/processor"), description="faust's working directory")
    decider_enabled: bool = True
    runner_enabled: bool = True
    shutdown_grace_s: float = Field(10.0, ge=0, description="how long running jobs may finish on stop")
