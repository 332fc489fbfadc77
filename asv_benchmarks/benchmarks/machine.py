"""The CPU every benchmark table names, read without importing ``nn`` (the drivers'
parent processes, which start the contenders, load no Numba)."""
import platform


def cpu_fields():
    """The first processor's ``/proc/cpuinfo`` fields as a dict ({} where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (s.strip() for s in line.split(":", 1))
                    fields.setdefault(key, value)
                elif fields:
                    break
    except OSError:
        pass
    return fields


def has_avx512(fields=None):
    """Whether the CPU has AVX-512 (``avx512f``), or None where its flags are unknown."""
    fields = cpu_fields() if fields is None else fields
    return "avx512f" in fields["flags"].split() if "flags" in fields else None


def cpu_name(fields=None):
    """The model name, or platform's word for the processor where there is none."""
    fields = cpu_fields() if fields is None else fields
    return fields.get("model name") or platform.processor() or platform.machine()


def cpu_model():
    """The model name with family/model when the name is as terse as a VM's "AMD EPYC",
    and AVX-512 when the CPU has it."""
    fields = cpu_fields()
    extra = ([f"family {fields['cpu family']} model {fields['model']}"]
             if "cpu family" in fields and "model" in fields else [])
    if has_avx512(fields):
        extra.append("AVX-512")
    name = cpu_name(fields)
    return f"{name} ({', '.join(extra)})" if extra else name
