from services.readiness.models import Base
from trellis.migrate import run_env

run_env(Base.metadata)
