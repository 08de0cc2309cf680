# The one image of Ascent: the Functions host serving function_app.py, and (same image, another
# command) every ACA job: `python -m aca_jobs <name>`. Built by azd (remote build in ACR) and by
# local/compose.yaml.
FROM mcr.microsoft.com/azure-functions/python:4-python3.11

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    PYTHON_ENABLE_INIT_INDEXING=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Jobs run `python -m aca_jobs ...` from here, so the project's packages import.
WORKDIR /home/site/wwwroot

# The lock pins every package (the same pins CI tests with, via requirements-dev.lock).
COPY requirements.lock /requirements.lock
RUN pip install -r /requirements.lock

COPY . /home/site/wwwroot
