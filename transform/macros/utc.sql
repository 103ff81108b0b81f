{#- Calendar buckets in UTC whatever the session's time zone. -#}
{% macro utc_hour(column) -%}
    date_trunc('hour', {{ column }}, 'UTC')
{%- endmacro %}

{% macro utc_day(column) -%}
    ({{ column }} at time zone 'UTC')::date
{%- endmacro %}
