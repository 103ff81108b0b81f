{#- Fails on every group whose non-NULL values of `column_name` do not sum
    to target ± tolerance. Groups with no value at all (nothing reported)
    are not judged. -#}
{% test sums_to_about(model, column_name, group_by, target=100, tolerance=1) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as total
from {{ model }}
group by {{ group_by | join(', ') }}
having count({{ column_name }}) > 0
    and abs(sum({{ column_name }}) - {{ target }}) > {{ tolerance }}
{% endtest %}
