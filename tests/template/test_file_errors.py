from __future__ import annotations

import pytest

from tokbill import TemplateError
from tokbill.template import load_templates

from .conftest import TemplateFiles
from .texts import GPT4


def test_a_missing_file_is_named(files: TemplateFiles) -> None:
    assert files.problems("absent.yaml") == [
        "absent.yaml: cannot read the template: No such file or directory."
    ]


def test_a_directory_is_not_a_template(files: TemplateFiles) -> None:
    (files.directory / "templates").mkdir()

    [problem] = files.problems("templates")

    assert problem.startswith("templates: cannot read the template: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=repr)
def test_an_empty_file_is_an_error(files: TemplateFiles, text: str) -> None:
    files.write(text)

    assert files.problems() == [
        "t.yaml:1: the file is empty; expected a template mapping that starts "
        "with version: 1."
    ]


def test_non_utf8_bytes_are_located(files: TemplateFiles) -> None:
    files.write_bytes(b"version: 1\nplans: []\n# caf\xe9\n")

    assert files.problems() == [
        "t.yaml:3: the file is not UTF-8 text (byte 0xe9 at offset 26); "
        "expected a template saved as UTF-8."
    ]


def test_a_utf8_byte_order_mark_is_accepted(files: TemplateFiles) -> None:
    files.write_bytes(b"\xef\xbb\xbf" + GPT4.encode("utf-8"))

    assert files.load().plan("gpt4").name == "GPT-4"


def test_a_yaml_syntax_error_names_its_line_and_column(files: TemplateFiles) -> None:
    files.write(GPT4.replace("    name: GPT-4\n", "    name: GPT-4\n   bad: x\n"))

    assert files.problems() == [
        f"t.yaml:{files.line('bad: x')}: YAML syntax error at column 4: while "
        f"parsing a block collection at line {files.line('- code: gpt4')}, expected "
        "<block end>, but found '<block mapping start>'."
    ]


def test_an_unclosed_bracket_names_where_it_opened(files: TemplateFiles) -> None:
    files.write(GPT4.replace('output: "0.12"}', 'output: "0.12"'))

    [problem] = files.problems()

    assert problem.startswith("t.yaml:29: YAML syntax error at column 1: while ")
    assert f"flow mapping at line {files.line('gpt-4-32k: {')}, expected ','" in (
        problem
    )


def test_several_yaml_documents_in_one_file_are_refused(files: TemplateFiles) -> None:
    files.write(GPT4 + "---\nversion: 1\n")

    [problem] = files.problems()

    assert problem == (
        f"t.yaml:{files.line('---')}: YAML syntax error at column 1: expected a "
        "single document in the stream at line 1, but found another document."
    )


def test_a_control_character_is_located(files: TemplateFiles) -> None:
    files.write(GPT4.replace("name: GPT-4", "name: GPT\x01-4"))

    assert files.problems() == [
        f"t.yaml:{files.line('GPT')}: the file cannot be read as YAML: character "
        "U+0001: special characters are not allowed."
    ]


def test_an_alias_bomb_is_refused_without_expanding_it(files: TemplateFiles) -> None:
    levels = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        levels.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    files.write("\n".join(levels) + "\n")

    assert files.problems() == [
        "t.yaml:1: the file expands to more than 100000 values through aliases; "
        "expected a template."
    ]


def test_a_template_must_be_a_mapping(files: TemplateFiles) -> None:
    files.write("- version: 1\n")

    assert files.problems() == [
        "t.yaml:1: the template is a list; expected a mapping with version, "
        "billable_metrics and plans."
    ]


def test_a_key_given_twice_is_an_error(files: TemplateFiles) -> None:
    files.write(GPT4.replace("    name: GPT-4\n", "    name: GPT-4\n    name: X\n"))

    assert files.problems() == [
        f"t.yaml:{files.line('name: X')}: plans[0].name: this key is given twice "
        f"(first at line {files.line('name: GPT-4')}); expected each key once."
    ]


def test_merge_keys_and_custom_tags_are_refused(files: TemplateFiles) -> None:
    files.write(
        GPT4.replace("    name: GPT-4\n", "    <<: {name: GPT-4}\n").replace(
            "amount_cents: 0", "amount_cents: !cents 0"
        )
    )

    assert files.problems() == [
        f"t.yaml:{files.line('- code: gpt4')}: plans[0].name: is required; "
        "expected a non-empty name.",
        f"t.yaml:{files.line('<<:')}: plans[0]: YAML merge keys (<<) are not "
        "supported; expected the keys written out.",
        f"t.yaml:{files.line('amount_cents')}: plans[0].amount_cents: the YAML tag "
        "!cents is not supported; expected a plain value.",
    ]


def test_an_alias_that_contains_itself_is_refused(files: TemplateFiles) -> None:
    files.write(GPT4.replace("price_by: [model, type]", "price_by: &loop [*loop]"))

    assert files.problems() == [
        f"t.yaml:{files.line('&loop')}: plans[0].charges[0].price_by[0]: an alias "
        "refers to a value that contains it; expected a finite tree."
    ]


def test_aliases_to_plain_values_work(files: TemplateFiles) -> None:
    files.write(
        GPT4.replace('input: "0.03"', "input: &base 0.03").replace(
            'input: "0.06"', "input: *base"
        )
    )

    charge = files.load().plan("gpt4").charges[0]

    assert charge.price_for({"model": "gpt-4-32k", "type": "input"}).amount == (
        charge.price_for({"model": "gpt-4", "type": "input"}).amount
    )


def test_no_paths_is_an_error() -> None:
    with pytest.raises(TemplateError, match="No template files were given"):
        load_templates([])


def test_one_path_may_be_given_bare_and_a_repeated_path_is_read_once(
    files: TemplateFiles,
) -> None:
    files.write(GPT4)

    assert load_templates("t.yaml").paths == ("t.yaml",)
    assert load_templates(["t.yaml", "./t.yaml"]).paths == ("t.yaml",)


def test_problems_of_every_file_come_in_one_error_in_file_order(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace("interval: monthly", "interval: hourly"), "b.yaml")
    files.write(GPT4.replace("amount_currency: USD", "amount_currency: usd"), "a.yaml")

    problems = files.problems("b.yaml", "missing.yaml", "a.yaml")

    assert [problem.split(":")[0] for problem in problems] == [
        "b.yaml",
        "missing.yaml",
        "a.yaml",
        "a.yaml",
    ]
    assert "plans[0].interval: hourly is not supported" in problems[0]
    assert 'plan "gpt4" is already declared at b.yaml:13' in problems[2]
    assert "plans[0].amount_currency: usd is not a currency code" in problems[3]
