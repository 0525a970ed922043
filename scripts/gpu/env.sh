# Source THIS on the GPU machine, from the repository root (every device call starts bare):
#   source scripts/gpu/env.sh
# Installs the carried wheels (.whl/, see fetch_wheels.sh) into /tmp/site and makes `kernelwright` importable
# from this checkout without building it: a package folder of links, laid out as setuptools' package-dir
# maps it (kernelwright/ holding tools/, agents/, ...). Worker processes inherit PYTHONPATH.
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
mkdir -p /tmp/kwpkg/kernelwright
for f in kernelwright/*; do ln -sfn "$PWD/$f" /tmp/kwpkg/kernelwright/; done
for d in tools agents graphs prompts memory eval; do ln -sfn "$PWD/$d" /tmp/kwpkg/kernelwright/$d; done
export PYTHONPATH=/tmp/kwpkg:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export KERNELWRIGHT_CACHE_DIR=${KERNELWRIGHT_CACHE_DIR:-/tmp/kw-build}
python3 -P -c "import kernelwright.tools.harness.evaluate, structlog, torch; print('kernelwright ready:', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
