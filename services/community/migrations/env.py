from services.community.models import Base
from trellis.migrate import run_env

run_env(Base.metadata)
