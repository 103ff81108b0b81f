{#- The length in seconds of a CoinCap history interval (m1, m5, ..., h12,
    d1); NULL for one it does not know. -#}
{% macro interval_seconds(column) -%}
    case
        when {{ column }} ~ '^[mhd][0-9]+$' then
            substr({{ column }}, 2)::integer
            * case left({{ column }}, 1) when 'm' then 60 when 'h' then 3600 else 86400 end
    end
{%- endmacro %}
