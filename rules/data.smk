rule generate_data:
    output:
        GENERATED_DATA,
    log:
        "logs/generate_data.log",
    conda:
        "../envs/data.yaml"
    params:
        settings=config["data"]["generated"],
        missing=DEFAULT_DATA_FILE,
        code=code_digest("mnist3d.data.recipe"),
    script:
        "../scripts/generate_data.py"


rule check_data:
    input:
        data_file(),
    output:
        report(
            DATA_SUMMARY,
            caption=figure_caption("data_summary"),
            category="Data",
        ),
    log:
        "logs/check_data.log",
    conda:
        "../envs/data.yaml"
    params:
        code=code_digest("mnist3d.data.check"),
    script:
        "../scripts/check_data.py"


rule prepare_data:
    input:
        data=data_file(),
        summary=DATA_SUMMARY,
    output:
        PREPARED,
    log:
        "logs/prepare_data.log",
    conda:
        "../envs/data.yaml"
    params:
        validation_fraction=config["data"]["validation_fraction"],
        split_seed=config["data"]["split_seed"],
        code=code_digest("mnist3d.data.prepare"),
    script:
        "../scripts/prepare_data.py"
