{#- A model's +schema is its exact schema (`analytics`, `staging`), not
    dbt's default `<target schema>_<custom schema>`: the dashboards and the
    grants name `analytics` itself. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
